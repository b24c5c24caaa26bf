#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "collect.h"
#include "util.h"

#define BATCH 4096

static int by_key(const void *a, const void *b)
{
	const struct stack_stat *x = a, *y = b;

	if (x->tgid != y->tgid)
		return x->tgid < y->tgid ? -1 : 1;
	return x->stack_id < y->stack_id ? -1 : x->stack_id > y->stack_id;
}

static int by_outstanding(const void *a, const void *b)
{
	const struct stack_stat *x = a, *y = b;

	if (x->tgid != y->tgid)
		return x->tgid < y->tgid ? -1 : 1;
	if (x->out_bytes != y->out_bytes)
		return x->out_bytes > y->out_bytes ? -1 : 1;
	return x->out_allocs > y->out_allocs ? -1 : x->out_allocs < y->out_allocs;
}

static void read_stack_counts(int fd, want_fn want, void *ctx, struct snapshot *s)
{
	struct stack_key key, next;
	struct stack_key *prev = NULL;
	size_t cap = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		struct stack_stat *st;

		key = next;
		prev = &key;
		if (!want(key.tgid, ctx))
			continue;
		if (s->nstacks == cap) {
			cap = cap ? cap * 2 : 256;
			s->stacks = xrealloc(s->stacks, cap * sizeof(*s->stacks));
		}
		st = &s->stacks[s->nstacks];
		memset(st, 0, sizeof(*st));
		st->tgid = key.tgid;
		st->stack_id = key.stack_id;
		if (bpf_map_lookup_elem(fd, &key, &st->c) == 0)
			s->nstacks++;
	}
}

/* The current image of each traced process that has exec'd, sorted by tgid. */
struct image {
	__u32 tgid, image;
};

static int by_image_tgid(const void *a, const void *b)
{
	const struct image *x = a, *y = b;

	return x->tgid < y->tgid ? -1 : x->tgid > y->tgid;
}

static void read_images(int procs, struct snapshot *s)
{
	__u32 key, next, *prev = NULL;
	struct proc_counts p;

	while (bpf_map_get_next_key(procs, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(procs, &key, &p) || !p.image)
			continue;
		s->images = xrealloc(s->images, (s->nimages + 1) * sizeof(*s->images));
		s->images[s->nimages++] = (struct image){.tgid = key, .image = p.image};
	}
	qsort(s->images, s->nimages, sizeof(*s->images), by_image_tgid);
}

/* A block of an image its process has left by exec is no longer its. */
static bool current_image(const struct snapshot *s, const struct alloc_info *a)
{
	struct image probe = {.tgid = a->owner}, *found;

	found = bsearch(&probe, s->images, s->nimages, sizeof(probe), by_image_tgid);
	return a->image == (found ? found->image : 0);
}

static void add_live(struct snapshot *s, const struct alloc_info *a, __u64 cutoff_ns)
{
	struct stack_stat probe = {.tgid = a->owner, .stack_id = a->stack_id};
	struct stack_stat *st;

	if (!a->stack_id || a->time_ns > cutoff_ns || !current_image(s, a))
		return;
	st = bsearch(&probe, s->stacks, s->nstacks, sizeof(*st), by_key);
	if (!st)
		return;
	st->out_bytes += a->size;
	st->out_allocs++;
	if (!st->oldest_ns || a->time_ns < st->oldest_ns)
		st->oldest_ns = a->time_ns;
}

typedef void (*alloc_fn)(const struct alloc_key *k, const struct alloc_info *a, void *ctx);

/* One pass over the live allocations, in batches; -errno if the map could
 * not be read to its end. */
static int for_each_alloc(int fd, alloc_fn fn, void *ctx)
{
	struct alloc_key *keys = xcalloc(BATCH, sizeof(*keys));
	struct alloc_info *vals = xcalloc(BATCH, sizeof(*vals));
	struct alloc_key out_batch;
	void *in = NULL;
	int err, status = 0;

	do {
		__u32 n = BATCH;

		err = bpf_map_lookup_batch(fd, in, &out_batch, keys, vals, &n, NULL);
		if (err && errno != ENOENT) { /* ENOENT: the end */
			status = -errno;
			break;
		}
		for (__u32 i = 0; i < n; i++)
			fn(&keys[i], &vals[i], ctx);
		in = &out_batch;
	} while (!err);
	free(keys);
	free(vals);
	return status;
}

struct live_ctx {
	want_fn want;
	void *want_ctx;
	__u64 cutoff_ns;
	struct snapshot *s;
};

static void add_wanted(const struct alloc_key *k, const struct alloc_info *a, void *ctx)
{
	struct live_ctx *lc = ctx;

	(void)k;
	if (lc->want(a->owner, lc->want_ctx))
		add_live(lc->s, a, lc->cutoff_ns);
}

int snapshot_read(const struct heap_maps *m, want_fn want, void *ctx, __u64 older_than_ns,
		  struct snapshot *s)
{
	__u64 now = monotonic_ns();
	__u64 cutoff = older_than_ns < now ? now - older_than_ns : 0;
	int err;

	memset(s, 0, sizeof(*s));
	if (m->procs < 0)
		return 0;
	s->drops = *m->drops;
	read_images(m->procs, s);
	read_stack_counts(m->stack_counts, want, ctx, s);
	qsort(s->stacks, s->nstacks, sizeof(*s->stacks), by_key);
	err = for_each_alloc(
	    m->allocs, add_wanted,
	    &(struct live_ctx){.want = want, .want_ctx = ctx, .cutoff_ns = cutoff, .s = s});
	qsort(s->stacks, s->nstacks, sizeof(*s->stacks), by_outstanding);
	return err;
}

void snapshot_free(struct snapshot *s)
{
	free(s->stacks);
	free(s->images);
	memset(s, 0, sizeof(*s));
}

struct proc_counts snapshot_proc(const struct heap_maps *m, __u32 tgid)
{
	struct proc_counts p = {0};

	if (m->procs >= 0)
		bpf_map_lookup_elem(m->procs, &tgid, &p);
	return p;
}

static int by_tgid(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* A sorted set of processes being forgotten. */
struct tgid_set {
	const __u32 *tgids;
	size_t n;
};

static bool in_set(const struct tgid_set *set, __u32 tgid)
{
	return bsearch(&tgid, set->tgids, set->n, sizeof(tgid), by_tgid) != NULL;
}

/* Keys are collected first: deleting during the walk could restart it. */
static void forget_stack_counts(int fd, const struct tgid_set *set)
{
	struct stack_key key, next, *prev = NULL, *theirs = NULL;
	size_t n = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (!in_set(set, key.tgid))
			continue;
		theirs = xrealloc(theirs, (n + 1) * sizeof(*theirs));
		theirs[n++] = key;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(fd, &theirs[i]);
	free(theirs);
}

struct forget_ctx {
	const struct tgid_set *set;
	struct alloc_key *keys;
	size_t n, cap;
};

static void collect_theirs(const struct alloc_key *k, const struct alloc_info *a, void *ctx)
{
	struct forget_ctx *fc = ctx;

	if (!in_set(fc->set, a->owner))
		return;
	if (fc->n == fc->cap) {
		fc->cap = fc->cap ? fc->cap * 2 : 256;
		fc->keys = xrealloc(fc->keys, fc->cap * sizeof(*fc->keys));
	}
	fc->keys[fc->n++] = *k;
}

/* Keys are collected first, then deleted: deleting would disturb the batches. */
static int forget_allocs(int fd, const struct tgid_set *set)
{
	struct forget_ctx fc = {.set = set};
	int err = for_each_alloc(fd, collect_theirs, &fc);

	for (size_t i = 0; i < fc.n; i++)
		bpf_map_delete_elem(fd, &fc.keys[i]);
	free(fc.keys);
	return err;
}

int snapshot_forget(const struct heap_maps *m, __u32 *tgids, size_t n)
{
	struct tgid_set set = {.tgids = tgids, .n = n};

	if (m->procs < 0 || n == 0)
		return 0;
	qsort(tgids, n, sizeof(*tgids), by_tgid);
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(m->procs, &tgids[i]);
	forget_stack_counts(m->stack_counts, &set);
	return forget_allocs(m->allocs, &set);
}

/* The stack ids that counts or live blocks refer to, sorted, repeats kept. */
struct id_list {
	__u64 *ids;
	size_t n, cap;
};

static void id_add(struct id_list *l, __u64 id)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->ids = xrealloc(l->ids, l->cap * sizeof(*l->ids));
	}
	l->ids[l->n++] = id;
}

static void add_block_stack(const struct alloc_key *k, const struct alloc_info *a, void *ctx)
{
	(void)k;
	if (a->stack_id)
		id_add(ctx, a->stack_id);
}

static int by_id(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

/* A stack that BPF may be taking right now is put back: see heap.bpf.h. */
#define STACK_GRACE_NS 1000000000ull
/* A live process's stack that holds nothing and was not taken for this long
 * loses its counts entry (and so may lose its frames). */
#define STACK_IDLE_NS (30 * 1000000000ull)

/* Whether a stack's counts entry can go: nothing outstanding, long unused. */
static bool idle(const struct heap_maps *m, const struct stack_key *key, __u64 now)
{
	struct stack_frames f;
	struct counts c;

	if (bpf_map_lookup_elem(m->stack_counts, key, &c) || c.allocs != c.frees)
		return false;
	return bpf_map_lookup_elem(m->stacks, &key->stack_id, &f) ||
	       f.used_ns + STACK_IDLE_NS < now;
}

/* The stacks that counts or live blocks refer to; counts entries of idle
 * stacks are deleted, so that a long-lived process that goes through many
 * stacks does not hold them all for its life. */
static int referenced_stacks(const struct heap_maps *m, struct id_list *l, __u64 now)
{
	struct stack_key key, next, *prev = NULL, *idle_keys = NULL;
	size_t nidle = 0;
	int err;

	while (bpf_map_get_next_key(m->stack_counts, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (!idle(m, &key, now)) {
			id_add(l, key.stack_id);
			continue;
		}
		idle_keys = xrealloc(idle_keys, (nidle + 1) * sizeof(*idle_keys));
		idle_keys[nidle++] = key;
	}
	for (size_t i = 0; i < nidle; i++) /* after the walk: deleting would restart it */
		bpf_map_delete_elem(m->stack_counts, &idle_keys[i]);
	free(idle_keys);
	err = for_each_alloc(m->allocs, add_block_stack, l);
	qsort(l->ids, l->n, sizeof(*l->ids), by_id);
	return err;
}

int snapshot_sweep_stacks(const struct heap_maps *m, size_t *kept, size_t *reclaimed)
{
	__u64 key, next, *prev = NULL, start = monotonic_ns();
	struct id_list refs = {0}, unused = {0};
	struct stack_frames f;
	int err;

	*kept = *reclaimed = 0;
	if (m->procs < 0)
		return 0;
	err = referenced_stacks(m, &refs, start);
	if (err) /* a stack not seen referenced may be: reclaim nothing */
		goto out;
	while (bpf_map_get_next_key(m->stacks, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bsearch(&key, refs.ids, refs.n, sizeof(key), by_id))
			++*kept;
		else
			id_add(&unused, key);
	}
	for (size_t i = 0; i < unused.n; i++) {
		if (bpf_map_lookup_and_delete_elem(m->stacks, &unused.ids[i], &f))
			continue;
		if (f.used_ns + STACK_GRACE_NS >= start) {
			bpf_map_update_elem(m->stacks, &unused.ids[i], &f, BPF_NOEXIST);
			++*kept;
		} else {
			++*reclaimed;
		}
	}
out:
	free(refs.ids);
	free(unused.ids);
	return err;
}

int snapshot_frames(const struct heap_maps *m, __u64 stack_id, __u64 *ips, __u32 *how)
{
	struct stack_frames f;
	int n = 0;

	*how = 0;
	if (bpf_map_lookup_elem(m->stacks, &stack_id, &f))
		return 0;
	*how = f.how;
	while (n < MAX_FRAMES && f.ips[n]) {
		ips[n] = f.ips[n];
		n++;
	}
	return n;
}
