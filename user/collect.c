#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "collect.h"
#include "util.h"

#define BATCH 4096

/* The least power of 2 at least n, from 1024. */
static __u32 pow2_from(__u64 n)
{
	__u32 p = 1024;

	while (p < n)
		p <<= 1;
	return p;
}

int heap_maps_size(const struct heap_objects *o, __u32 max_allocs, __u32 max_stacks)
{
	/* At most half full: a block finds a free slot within its probes, and
	 * a new stack's totals a free row within a few tries. */
	__u32 slots = pow2_from(2 * (__u64)max_allocs), rows = pow2_from(4 * (__u64)max_stacks);
	int e;

	*o->blocks_mask = slots - 1;
	*o->stack_rows_mask = rows - 1;
	e = bpf_map__set_max_entries(o->blocks, slots);
	if (!e)
		e = bpf_map__set_max_entries(o->block_pages,
					     (slots + BLOCK_PAGE_SLOTS - 1) / BLOCK_PAGE_SLOTS);
	if (!e)
		e = bpf_map__set_max_entries(o->stack_rows, rows);
	if (!e)
		e = bpf_map__set_max_entries(o->stack_counts, 2 * max_stacks);
	if (!e)
		e = bpf_map__set_max_entries(o->counts_copy, 2 * max_stacks);
	if (!e)
		e = bpf_map__set_max_entries(o->stacks, max_stacks);
	if (!e)
		e = bpf_map__set_max_entries(o->uses_copy, max_stacks);
	return e;
}

static const void *map_rows(struct bpf_map *map, size_t *rows)
{
	size_t len = (size_t)bpf_map__value_size(map) * bpf_map__max_entries(map);
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, bpf_map__fd(map), 0);

	*rows = p == MAP_FAILED ? 0 : bpf_map__max_entries(map);
	return p == MAP_FAILED ? NULL : p;
}

int heap_maps_open(struct heap_maps *m, const struct heap_objects *o)
{
	struct heap_maps h = {.blocks = bpf_map__fd(o->blocks),
			      .block_slots = bpf_map__max_entries(o->blocks),
			      .block_op = bpf_program__fd(o->block_op),
			      .block_answer = o->block_answer,
			      .procs = bpf_map__fd(o->procs),
			      .proc_rows = bpf_map__fd(o->proc_rows),
			      .ended = o->ended ? bpf_map__fd(o->ended) : -1,
			      .stack_counts = bpf_map__fd(o->stack_counts),
			      .stack_rows = bpf_map__fd(o->stack_rows),
			      .stacks = bpf_map__fd(o->stacks),
			      .drops = o->drops,
			      .nested_calls = o->nested_calls,
			      .copy_counts = bpf_program__fd(o->copy_counts),
			      .copy_uses = bpf_program__fd(o->copy_uses),
			      .rows_copied = o->rows_copied};

	h.counts_rows = map_rows(o->counts_copy, &h.counts_cap);
	h.use_rows = map_rows(o->uses_copy, &h.uses_cap);
	h.block_pages = map_rows(o->block_pages, &h.npages);
	if (!h.counts_rows || !h.use_rows || !h.block_pages) {
		int e = -errno;

		heap_maps_close(&h);
		return e;
	}
	*m = h; /* else m is left as it was: not loaded */
	return 0;
}

void heap_maps_close(struct heap_maps *m)
{
	if (m->counts_rows)
		munmap((void *)m->counts_rows, m->counts_cap * sizeof(*m->counts_rows));
	if (m->use_rows)
		munmap((void *)m->use_rows, m->uses_cap * sizeof(*m->use_rows));
	if (m->block_pages)
		munmap((void *)m->block_pages, m->npages * sizeof(*m->block_pages));
	m->counts_rows = NULL;
	m->use_rows = NULL;
	m->block_pages = NULL;
}

typedef void (*entry_fn)(const void *key, const void *val, void *ctx);

/* One pass over a hash map's entries, in batches; -errno if the map could
 * not be read to its end. */
static int for_each_entry(int fd, size_t key_size, size_t val_size, entry_fn fn, void *ctx)
{
	char *keys = xcalloc(BATCH, key_size), *vals = xcalloc(BATCH, val_size);
	__u64 out_batch; /* a hash map's batch is its bucket number */
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
			fn(keys + i * key_size, vals + i * val_size, ctx);
		in = &out_batch;
	} while (!err);
	free(keys);
	free(vals);
	return status;
}

/* Slots a walk maps at once: 4 MiB of the table. */
#define WALK_SLOTS (1u << 16)
_Static_assert(sizeof(struct block_slot) * BLOCK_PAGE_SLOTS == 4096, "a page of slots");
_Static_assert(WALK_SLOTS % BLOCK_PAGE_SLOTS == 0, "whole pages in a part");

/* Whether any page of slots [from, from + n) holds a live block, as BPF
 * counts them (a count going up or down meanwhile may read either way). */
static bool any_live(const struct heap_maps *m, size_t from, size_t n)
{
	for (size_t p = from / BLOCK_PAGE_SLOTS; p * BLOCK_PAGE_SLOTS < from + n && p < m->npages;
	     p++)
		if (__atomic_load_n(&m->block_pages[p], __ATOMIC_RELAXED))
			return true;
	return false;
}

/*
 * One pass over the live blocks, through memory maps of the table made for
 * it, a part at a time (kept mapped, the table's pages would count in the
 * loader's RSS), reading only the pages that hold live blocks. A slot is
 * copied whole if its state is the same before and after; a block
 * allocated or freed during the pass may or may not be seen, as in a walk
 * of a hash map.
 */
static int for_each_block(const struct heap_maps *m, entry_fn fn, void *ctx)
{
	for (size_t from = 0; from < m->block_slots; from += WALK_SLOTS) {
		size_t n = m->block_slots - from < WALK_SLOTS ? m->block_slots - from : WALK_SLOTS;
		size_t len = n * sizeof(struct block_slot);
		const struct block_slot *slots;

		if (!any_live(m, from, n))
			continue;
		slots = mmap(NULL, len, PROT_READ, MAP_SHARED, m->blocks,
			     (off_t)(from * sizeof(struct block_slot)));
		if (slots == MAP_FAILED)
			return -errno;
		for (size_t i = 0; i < n; i++) {
			const struct block_slot *s = &slots[i];
			__u32 state;
			struct alloc_key k;
			struct alloc_info a;

			if (i % BLOCK_PAGE_SLOTS == 0 && !any_live(m, from + i, BLOCK_PAGE_SLOTS)) {
				i += BLOCK_PAGE_SLOTS - 1;
				continue;
			}
			state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
			if ((state & 3) != BLOCK_LIVE)
				continue;
			k = s->key;
			a = s->info;
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) == state)
				fn(&k, &a, ctx);
		}
		munmap((void *)slots, len);
	}
	return 0;
}

struct space_blocks {
	__u32 space, image;
	block_fn fn;
	void *ctx;
};

static void of_space(const void *key, const void *val, void *ctx)
{
	const struct alloc_key *k = key;
	const struct alloc_info *a = val;
	const struct space_blocks *sb = ctx;

	if (k->space == sb->space && (a->owner != sb->space || a->image == sb->image))
		sb->fn(sb->ctx, k->addr, a->size, a->stack_id);
}

int heap_blocks_of(const struct heap_maps *m, __u32 space, __u32 image, block_fn fn, void *ctx)
{
	struct space_blocks sb = {.space = space, .image = image, .fn = fn, .ctx = ctx};

	return for_each_block(m, of_space, &sb);
}

/* Ask BPF of one block (struct block_op): 1 if done, 0 if it is not live,
 * -errno if it could not be asked. */
static int block_op(const struct heap_maps *m, struct block_op *op)
{
	LIBBPF_OPTS(bpf_test_run_opts, run, .ctx_in = op, .ctx_size_in = sizeof(*op));
	int e = bpf_prog_test_run_opts(m->block_op, &run);

	if (e)
		return e;
	*op = *(volatile const struct block_op *)m->block_answer;
	return op->done;
}

struct inherited {
	__u32 parent;
	struct block_op *ops;
	size_t n, cap;
};

static void of_parent(const void *key, const void *val, void *ctx)
{
	const struct alloc_key *k = key;
	struct inherited *in = ctx;

	if (k->space != in->parent)
		return;
	if (in->n == in->cap) {
		in->cap = in->cap ? 2 * in->cap : 256;
		in->ops = xrealloc(in->ops, in->cap * sizeof(*in->ops));
	}
	in->ops[in->n++] = (struct block_op){.key = *k, .info = *(const struct alloc_info *)val};
}

int heap_inherit(const struct heap_maps *m, __u32 parent, __u32 child)
{
	struct inherited in = {.parent = parent};
	int e = for_each_block(m, of_parent, &in);

	for (size_t i = 0; !e && i < in.n; i++) {
		in.ops[i].key.space = child;
		in.ops[i].info.owner = child;
		in.ops[i].op = BLOCK_OP_INHERIT;
		e = block_op(m, &in.ops[i]) < 0 ? -EIO : 0;
	}
	free(in.ops);
	return e ? e : (int)in.n;
}

/* A sorted set of processes. */
struct tgid_set {
	const __u32 *tgids;
	size_t n;
};

static bool in_set(const struct tgid_set *set, __u32 tgid)
{
	return bsearch(&tgid, set->tgids, set->n, sizeof(tgid), cmp_u32) != NULL;
}

/* Have the kernel copy a table out into mapped rows (prog), each a key
 * then a value, and pass each row to fn; -errno if it could not. */
static int for_each_row(const struct heap_maps *m, int prog, const void *rows, size_t row_size,
			size_t key_size, entry_fn fn, void *ctx)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts);
	__u32 n;

	if (bpf_prog_test_run_opts(prog, &opts))
		return -errno;
	n = *(volatile const __u32 *)m->rows_copied;
	for (__u32 i = 0; i < n; i++) {
		const char *row = (const char *)rows + i * row_size;

		fn(row, row + key_size, ctx);
	}
	return 0;
}

/* fn(struct stack_key *, struct stack_counts *) for every counts entry. */
static int for_each_counts(const struct heap_maps *m, entry_fn fn, void *ctx)
{
	return for_each_row(m, m->copy_counts, m->counts_rows, sizeof(struct counts_row),
			    offsetof(struct counts_row, v), fn, ctx);
}

/* fn(__u64 *stack_id, struct stack_use_row *) for every stored stack. */
static int for_each_use(const struct heap_maps *m, entry_fn fn, void *ctx)
{
	return for_each_row(m, m->copy_uses, m->use_rows, sizeof(struct stack_use_row), 0, fn, ctx);
}

static int by_key(const void *a, const void *b)
{
	const struct stack_stat *x = a, *y = b;

	if (x->tgid != y->tgid)
		return x->tgid < y->tgid ? -1 : 1;
	return x->stack_id < y->stack_id ? -1 : x->stack_id > y->stack_id;
}

/* A process's images: its live one (procs) and the one it ended with
 * (ended), either 0 if none; and, for a process the snapshot wanted, its
 * totals of the image it views, read right after the stacks' (counted). */
struct image {
	__u32 tgid, live, ended;
	bool counted;
	struct counts c;
};

static int by_image_tgid(const void *a, const void *b)
{
	const struct image *x = a, *y = b;

	return x->tgid < y->tgid ? -1 : x->tgid > y->tgid;
}

static void add_image(struct snapshot *s, __u32 tgid, __u32 live, __u32 ended)
{
	s->images = xrealloc(s->images, (s->nimages + 1) * sizeof(*s->images));
	s->images[s->nimages++] = (struct image){.tgid = tgid, .live = live, .ended = ended};
}

static void add_live_image(const void *key, const void *val, void *ctx)
{
	add_image(ctx, *(const __u32 *)key, ((const struct proc_entry *)val)->image, 0);
}

static void add_ended_image(const void *key, const void *val, void *ctx)
{
	add_image(ctx, *(const __u32 *)key, 0, ((const struct proc_counts *)val)->image);
}

static void read_images(const struct heap_maps *m, enum image_view view, struct snapshot *s)
{
	size_t n = 0;

	s->view = view;
	for_each_entry(m->procs, sizeof(__u32), sizeof(struct proc_entry), add_live_image, s);
	if (m->ended >= 0)
		for_each_entry(m->ended, sizeof(__u32), sizeof(struct proc_counts), add_ended_image,
			       s);
	qsort(s->images, s->nimages, sizeof(*s->images), by_image_tgid);
	for (size_t i = 0; i < s->nimages; i++) { /* one entry a process */
		struct image *to = &s->images[n ? n - 1 : 0];

		if (n && to->tgid == s->images[i].tgid) {
			to->live |= s->images[i].live;
			to->ended |= s->images[i].ended;
		} else {
			s->images[n++] = s->images[i];
		}
	}
	s->nimages = n;
}

/* Blocks and counts of an image its process has left by exec, or of another
 * process under the same pid, are not its (as the snapshot's view sees it). */
static bool current_image(const struct snapshot *s, __u32 tgid, __u32 image)
{
	struct image probe = {.tgid = tgid}, *f;

	f = bsearch(&probe, s->images, s->nimages, sizeof(probe), by_image_tgid);
	if (!f)
		return image == 0;
	switch (s->view) {
	case VIEW_ENDED:
		return image == (f->ended ? f->ended : f->live);
	case VIEW_ANY:
		return image == f->live || image == f->ended;
	default:
		return image == (f->live ? f->live : f->ended);
	}
}

struct read_ctx {
	struct tgid_set wanted;
	struct snapshot *s;
	size_t cap;
};

static __u64 difference(__u64 more, __u64 less)
{
	return more > less ? more - less : 0; /* read while BPF adds to both */
}

static void add_counted(const void *key, const void *val, void *ctx)
{
	const struct stack_key *k = key;
	const struct stack_counts *v = val;
	struct read_ctx *rc = ctx;
	struct snapshot *s = rc->s;
	struct stack_stat *st;

	if (!in_set(&rc->wanted, k->tgid) || !current_image(s, k->tgid, k->image))
		return;
	if (s->nstacks == rc->cap) {
		rc->cap = rc->cap ? rc->cap * 2 : 256;
		s->stacks = xrealloc(s->stacks, rc->cap * sizeof(*s->stacks));
	}
	st = &s->stacks[s->nstacks++];
	*st = (struct stack_stat){.tgid = k->tgid, .stack_id = k->stack_id, .c = v->c};
	st->out_bytes = difference(v->c.alloc_bytes, v->c.free_bytes);
	st->out_allocs = difference(v->c.allocs, v->c.frees);
	st->oldest_ns = st->out_allocs ? v->oldest_ns : 0;
}

/* -o: the stacks count only the live blocks older than a cutoff, found by a
 * walk of every live block. */
struct older_ctx {
	struct snapshot *s;
	struct tgid_set wanted;
	__u64 cutoff_ns;
};

static void add_older(const void *key, const void *val, void *ctx)
{
	const struct alloc_info *a = val;
	struct older_ctx *oc = ctx;
	struct stack_stat probe = {.tgid = a->owner, .stack_id = a->stack_id}, *st;

	if (!a->stack_id || a->time_ns > oc->cutoff_ns || !in_set(&oc->wanted, a->owner) ||
	    !current_image(oc->s, a->owner, a->image))
		return;
	st = bsearch(&probe, oc->s->stacks, oc->s->nstacks, sizeof(*st), by_key);
	if (!st)
		return;
	st->out_bytes += a->size;
	st->out_allocs++;
	if (!st->oldest_ns || a->time_ns < st->oldest_ns) {
		st->oldest_ns = a->time_ns;
		st->oldest = *(const struct alloc_key *)key;
	}
}

static int count_older(const struct heap_maps *m, struct tgid_set wanted, __u64 older_than_ns,
		       struct snapshot *s)
{
	__u64 now = monotonic_ns();
	struct older_ctx oc = {.s = s, .wanted = wanted};

	oc.cutoff_ns = older_than_ns < now ? now - older_than_ns : 0;
	for (size_t i = 0; i < s->nstacks; i++)
		s->stacks[i].out_bytes = s->stacks[i].out_allocs = s->stacks[i].oldest_ns = 0;
	return for_each_block(m, add_older, &oc);
}

int snapshot_read(const struct heap_maps *m, const __u32 *tgids, size_t ntgids, __u64 older_than_ns,
		  enum image_view view, struct snapshot *s)
{
	struct read_ctx rc = {.wanted = {.tgids = tgids, .n = ntgids}, .s = s};
	int err;

	memset(s, 0, sizeof(*s));
	if (m->procs < 0)
		return 0;
	s->drops = *m->drops;
	read_images(m, view, s);
	err = for_each_counts(m, add_counted, &rc);
	for (size_t i = 0; i < s->nimages; i++) {
		struct image *im = &s->images[i];

		if (in_set(&rc.wanted, im->tgid)) {
			im->c = snapshot_proc(m, im->tgid, view == VIEW_ENDED ? VIEW_ENDED : VIEW_LIVE).c;
			im->counted = true;
		}
	}
	qsort(s->stacks, s->nstacks, sizeof(*s->stacks), by_key);
	if (!err && older_than_ns)
		err = count_older(m, rc.wanted, older_than_ns, s);
	return err;
}

bool snapshot_counts(const struct snapshot *s, __u32 tgid, struct counts *c)
{
	struct image probe = {.tgid = tgid}, *f;

	f = bsearch(&probe, s->images, s->nimages, sizeof(probe), by_image_tgid);
	if (!f || !f->counted)
		return false;
	*c = f->c;
	return true;
}

void snapshot_free(struct snapshot *s)
{
	free(s->stacks);
	free(s->images);
	memset(s, 0, sizeof(*s));
}

const struct stack_stat *snapshot_stacks_of(const struct snapshot *s, __u32 tgid, size_t *n)
{
	size_t lo = 0, hi = s->nstacks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->stacks[mid].tgid < tgid)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (*n = 0; lo + *n < s->nstacks && s->stacks[lo + *n].tgid == tgid;)
		++*n;
	return *n ? &s->stacks[lo] : NULL;
}

/* A live process's totals: its entry and its image's row; -1 if none. */
static int live_proc(const struct heap_maps *m, __u32 tgid, struct proc_counts *p)
{
	struct proc_entry e;
	struct proc_row r;
	__u32 row;

	if (bpf_map_lookup_elem(m->procs, &tgid, &e))
		return -1;
	*p = (struct proc_counts){.image = e.image};
	memcpy(p->comm, e.comm, sizeof(p->comm));
	row = proc_row_of(e.image);
	if (bpf_map_lookup_elem(m->proc_rows, &row, &r) == 0 && r.image == e.image)
		p->c = r.c;
	return 0;
}

static int ended_proc(const struct heap_maps *m, __u32 tgid, struct proc_counts *p)
{
	return m->ended < 0 ? -1 : bpf_map_lookup_elem(m->ended, &tgid, p);
}

struct proc_counts snapshot_proc(const struct heap_maps *m, __u32 tgid, enum image_view view)
{
	struct proc_counts p = {0};

	if (m->procs < 0)
		return p;
	if (view == VIEW_ENDED) {
		if (ended_proc(m, tgid, &p))
			live_proc(m, tgid, &p);
	} else if (live_proc(m, tgid, &p)) {
		ended_proc(m, tgid, &p);
	}
	return p;
}

/* Stacks whose oldest live block is to be found, sorted as by_key sorts. */
struct oldest_search {
	const struct snapshot *s;
	struct stack_stat **want;
	size_t n;
};

static int by_key_ref(const void *a, const void *b)
{
	return by_key(*(struct stack_stat *const *)a, *(struct stack_stat *const *)b);
}

static void oldest_search_start(struct oldest_search *os, const struct snapshot *s,
				struct stack_stat **want, size_t n)
{
	*os = (struct oldest_search){.s = s, .want = want, .n = n};
	qsort(want, n, sizeof(*want), by_key_ref);
	for (size_t i = 0; i < n; i++)
		want[i]->oldest_ns = 0;
}

static void oldest_search_see(struct oldest_search *os, const struct alloc_key *k,
			      const struct alloc_info *a)
{
	struct stack_stat probe = {.tgid = a->owner, .stack_id = a->stack_id}, *p = &probe;
	struct stack_stat **found;

	if (!os->n || !a->stack_id || !current_image(os->s, a->owner, a->image))
		return;
	found = bsearch(&p, os->want, os->n, sizeof(p), by_key_ref);
	if (found && (!(*found)->oldest_ns || a->time_ns < (*found)->oldest_ns)) {
		(*found)->oldest_ns = a->time_ns;
		(*found)->oldest = *k;
	}
}

static void see_block(const void *key, const void *val, void *ctx)
{
	oldest_search_see(ctx, key, val);
}

int snapshot_find_oldest(const struct heap_maps *m, const struct snapshot *s,
			 struct stack_stat **want, size_t n)
{
	struct oldest_search os;

	oldest_search_start(&os, s, want, n);
	return for_each_block(m, see_block, &os);
}

bool snapshot_block_lives(const struct heap_maps *m, const struct alloc_key *k, __u64 stack_id,
			  __u64 time_ns)
{
	struct block_op op = {.key = *k, .op = BLOCK_OP_FIND};

	return block_op(m, &op) == 1 && op.info.stack_id == stack_id && op.info.time_ns == time_ns;
}

/* Processes being forgotten, and the keys of theirs found. */
struct forget_ctx {
	struct tgid_set set;
	const __u32 *keep; /* of each of set's processes: the image left to the other (0: none) */
	void *keys;
	size_t n, cap;
	struct oldest_search os; /* their stacks' oldest blocks, found on the way */
};

static void keep_key(struct forget_ctx *fc, const void *key, size_t size)
{
	if (fc->n == fc->cap) {
		fc->cap = fc->cap ? fc->cap * 2 : 256;
		fc->keys = xrealloc(fc->keys, fc->cap * size);
	}
	memcpy((char *)fc->keys + fc->n++ * size, key, size);
}

/* Whether tgid's entries of image go: tgid is forgotten, and image is not
 * the one left under its pid. */
static bool forgotten(const struct forget_ctx *fc, __u32 tgid, __u32 image)
{
	const __u32 *at = bsearch(&tgid, fc->set.tgids, fc->set.n, sizeof(tgid), cmp_u32);

	return at && image != fc->keep[at - fc->set.tgids];
}

static void their_counts(const void *key, const void *val, void *ctx)
{
	const struct stack_key *k = key;

	(void)val;
	if (forgotten(ctx, k->tgid, k->image))
		keep_key(ctx, key, sizeof(struct stack_key));
}

static void their_blocks(const void *key, const void *val, void *ctx)
{
	const struct alloc_info *a = val;
	struct forget_ctx *fc = ctx;
	struct block_op op = {.key = *(const struct alloc_key *)key,
			      .info.time_ns = a->time_ns,
			      .op = BLOCK_OP_FORGET};

	if (!forgotten(fc, a->owner, a->image))
		return;
	oldest_search_see(&fc->os, key, a);
	keep_key(fc, &op, sizeof(op));
}

/* Keys are collected in a walk, then deleted: deleting would disturb it. */
/* A (process, stack)'s totals go: its key, and its row is free again
 * (only the key's owner frees a row). */
static void forget_counts(const struct heap_maps *m, const struct stack_key *k)
{
	__u32 row;

	if (bpf_map_lookup_and_delete_elem(m->stack_counts, k, &row) == 0)
		bpf_map_update_elem(m->stack_rows, &row, &(struct counts_row){0}, BPF_ANY);
}

static void delete_kept(const struct heap_maps *m, struct forget_ctx *fc)
{
	for (size_t i = 0; i < fc->n; i++)
		forget_counts(m, (const struct stack_key *)fc->keys + i);
	free(fc->keys);
	fc->keys = NULL;
	fc->n = fc->cap = 0;
}

/* Blocks are collected in a walk, then forgotten: a block allocated at the
 * same address meanwhile (another time) stays. */
static void forget_kept_blocks(const struct heap_maps *m, struct forget_ctx *fc)
{
	for (size_t i = 0; i < fc->n; i++)
		block_op(m, (struct block_op *)fc->keys + i);
	free(fc->keys);
	fc->keys = NULL;
	fc->n = fc->cap = 0;
}

/* A live process's entry goes, and its row is free again. */
static bool forget_live(const struct heap_maps *m, __u32 tgid)
{
	struct proc_entry e;
	struct proc_row r = {0};
	__u32 row;

	if (bpf_map_lookup_and_delete_elem(m->procs, &tgid, &e))
		return false;
	row = proc_row_of(e.image);
	if (bpf_map_lookup_elem(m->proc_rows, &row, &r) == 0 && r.image == e.image)
		bpf_map_update_elem(m->proc_rows, &row, &(struct proc_row){0}, BPF_ANY);
	return true;
}

/* A process's totals go; returns the image left under its pid. Live: its
 * procs entry goes, and a predecessor's that ended (not yet retired) stays.
 * As it ended: its entry in ended goes, and a newcomer's live one stays;
 * if BPF did not move it apart (-p, a command, no room), its live entry
 * and all of its pid's go. */
static __u32 forget_totals(const struct heap_maps *m, __u32 tgid, bool ended)
{
	struct proc_counts other = {0};
	bool apart = ended ? m->ended >= 0 && bpf_map_delete_elem(m->ended, &tgid) == 0
			   : forget_live(m, tgid);

	if (ended && !apart) {
		forget_live(m, tgid);
		return 0;
	}
	if (ended ? live_proc(m, tgid, &other) : ended_proc(m, tgid, &other))
		return 0;
	return other.image;
}

int snapshot_forget(const struct heap_maps *m, __u32 *tgids, size_t n, bool ended,
		    struct snapshot *s)
{
	struct forget_ctx fc = {.set = {.tgids = tgids, .n = n}};
	struct stack_stat **unknown = NULL;
	size_t nunknown = 0;
	__u32 *keep;
	int err;

	if (m->procs < 0 || n == 0)
		return 0;
	qsort(tgids, n, sizeof(*tgids), cmp_u32);
	fc.keep = keep = xcalloc(n, sizeof(*keep));
	for (size_t i = 0; i < n; i++)
		keep[i] = forget_totals(m, tgids[i], ended);
	for (size_t i = 0; s && i < s->nstacks; i++) {
		if (s->stacks[i].out_allocs && !s->stacks[i].oldest_ns) {
			unknown = xrealloc(unknown, (nunknown + 1) * sizeof(*unknown));
			unknown[nunknown++] = &s->stacks[i];
		}
	}
	oldest_search_start(&fc.os, s, unknown, nunknown);
	for_each_counts(m, their_counts, &fc);
	delete_kept(m, &fc);
	err = for_each_block(m, their_blocks, &fc);
	forget_kept_blocks(m, &fc);
	free(unknown);
	free(keep);
	return err;
}

/* The stored stacks, each with when an allocation last took it, sorted. */
struct stack_use {
	__u64 id, used_ns;
	bool referenced;
};

struct stack_uses {
	struct stack_use *u;
	size_t n, cap;
};

static int by_id(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

static void add_use(const void *key, const void *val, void *ctx)
{
	struct stack_uses *l = ctx;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->u = xrealloc(l->u, l->cap * sizeof(*l->u));
	}
	l->u[l->n++] = (struct stack_use){.id = *(const __u64 *)key,
					  .used_ns = ((const struct stack_use_row *)val)->used_ns};
}

/* A stack that BPF may be taking right now is put back: see heap.bpf.h. */
#define STACK_GRACE_NS 1000000000ull
/* A live process's stack that holds nothing and was not taken for this long
 * loses its counts entry (and so may lose its frames). */
#define STACK_IDLE_NS (30 * 1000000000ull)

struct sweep_ctx {
	struct stack_uses *uses;
	struct snapshot images;
	__u64 now;
	struct stack_key *idle;
	size_t nidle;
};

/* A counts entry goes when its image is gone, or when it holds nothing and
 * its stack was long unused; else its stack is referenced. */
static void judge_counts(const void *key, const void *val, void *ctx)
{
	const struct stack_key *k = key;
	const struct stack_counts *v = val;
	struct sweep_ctx *sc = ctx;
	struct stack_use *u = bsearch(&k->stack_id, sc->uses->u, sc->uses->n, sizeof(*u), by_id);
	bool idle = v->c.allocs == v->c.frees && (!u || u->used_ns + STACK_IDLE_NS < sc->now);

	if (idle || !current_image(&sc->images, k->tgid, k->image)) {
		sc->idle = xrealloc(sc->idle, (sc->nidle + 1) * sizeof(*sc->idle));
		sc->idle[sc->nidle++] = *k;
	} else if (u) {
		u->referenced = true;
	}
}

int snapshot_sweep_stacks(const struct heap_maps *m, size_t *kept, size_t *reclaimed)
{
	struct stack_uses uses = {0};
	struct sweep_ctx sc = {.uses = &uses, .now = monotonic_ns()};
	struct stack_frames f;
	int err;

	*kept = *reclaimed = 0;
	if (m->procs < 0)
		return 0;
	read_images(m, VIEW_ANY, &sc.images);
	err = for_each_use(m, add_use, &uses);
	qsort(uses.u, uses.n, sizeof(*uses.u), by_id);
	if (!err)
		err = for_each_counts(m, judge_counts, &sc);
	if (err) /* a stack not seen referenced may be: reclaim nothing */
		goto out;
	for (size_t i = 0; i < sc.nidle; i++) /* after the walk: deleting would disturb it */
		forget_counts(m, &sc.idle[i]);
	for (size_t i = 0; i < uses.n; i++) {
		if (uses.u[i].referenced || uses.u[i].used_ns + STACK_GRACE_NS >= sc.now) {
			++*kept;
			continue;
		}
		if (bpf_map_lookup_and_delete_elem(m->stacks, &uses.u[i].id, &f))
			continue;
		if (f.used_ns + STACK_GRACE_NS >= sc.now) { /* taken since it was read */
			bpf_map_update_elem(m->stacks, &uses.u[i].id, &f, BPF_NOEXIST);
			++*kept;
		} else {
			++*reclaimed;
		}
	}
out:
	free(uses.u);
	free(sc.idle);
	snapshot_free(&sc.images);
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
