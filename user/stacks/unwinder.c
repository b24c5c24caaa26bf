#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <bpf/bpf.h>

#include "elf_file.h"
#include "unwind_table.h"
#include "unwinder.h"
#include "util.h"

void unwinder_init(struct unwinder *u, const struct unwinder_maps *maps, __u32 capacity,
		   double keep_s)
{
	*u = (struct unwinder){.rows_fd = maps->rows_fd,
			       .objs_fd = maps->objs_fd,
			       .wanted_fd = maps->wanted_fd,
			       .areas_fd = maps->areas_fd,
			       .row_cache_fd = maps->row_cache_fd,
			       .epoch = maps->epoch,
			       .capacity = capacity,
			       .keep_s = keep_s};
	u->free = xcalloc(1, sizeof(*u->free));
	u->free[0] = (struct extent){0, capacity};
	u->nfree = 1;
}

static struct unwind_obj *find_obj(struct unwinder *u, const struct unwind_key *key)
{
	for (size_t i = 0; i < u->nobjs; i++)
		if (u->objs[i].key.dev == key->dev && u->objs[i].key.ino == key->ino)
			return &u->objs[i];
	return NULL;
}

/* First fit; false if no free extent is long enough. */
static bool take_rows(struct unwinder *u, __u32 count, __u32 *first)
{
	for (size_t i = 0; i < u->nfree; i++) {
		struct extent *e = &u->free[i];

		if (e->count < count)
			continue;
		*first = e->first;
		e->first += count;
		e->count -= count;
		if (!e->count)
			memmove(e, e + 1, (--u->nfree - i) * sizeof(*e));
		u->rows_used += count;
		return true;
	}
	return false;
}

static int by_first(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* Rows freed at the previous collection become free now: no walk that
 * found their object before it was deleted can still be reading them. */
static void release_freed(struct unwinder *u)
{
	size_t n = 0;

	u->free = xrealloc(u->free, (u->nfree + u->nfreed + 1) * sizeof(*u->free));
	memcpy(u->free + u->nfree, u->freed, u->nfreed * sizeof(*u->freed));
	u->nfree += u->nfreed;
	u->nfreed = 0;
	qsort(u->free, u->nfree, sizeof(*u->free), by_first);
	for (size_t i = 0; i < u->nfree; i++) {
		if (n && u->free[n - 1].first + u->free[n - 1].count == u->free[i].first)
			u->free[n - 1].count += u->free[i].count;
		else
			u->free[n++] = u->free[i];
	}
	u->nfree = n;
}

static int load_rows(struct unwinder *u, const struct unwind_row *rows, __u32 first, __u32 n)
{
	__u32 *keys = xcalloc(n, sizeof(*keys)), count = n;
	int err;

	for (__u32 i = 0; i < n; i++)
		keys[i] = first + i;
	err = bpf_map_update_batch(u->rows_fd, keys, rows, &count, NULL);
	free(keys);
	return err || count != n ? -1 : 0;
}

/* Build the table of the object at path, known by key, unless it exists. */
/* An object's file as mapped: open_path opens it (wherever it lives: its
 * mapping's own link in /proc), name is where it is installed. */
struct mapping {
	struct unwind_key key; /* ino 0: not from a file (JIT code, the vDSO) */
	const char *open_path, *name;
	__u64 start, end, off;
};

/* A shared library (named *.so*) that defines malloc: its frames at the top
 * of a page's stack are the allocator's or memset's, at work for a caller. */
static bool allocator_library(const struct mapping *m)
{
	static const char *const names[] = {"malloc"};
	const char *base = strrchr(m->name, '/');
	struct elf_func f = {0};

	return strstr(base ? base : m->name, ".so") && elf_funcs(m->open_path, names, 1, &f) == 1 &&
	       f.offset;
}

/* Build the table of the mapped object, unless it exists. */
static void add_obj(struct unwinder *u, const struct mapping *m)
{
	struct unwind_obj *o = find_obj(u, &m->key);
	struct unwind_row *rows;
	size_t n;
	int err;

	if (o) {
		o->mapped_at = monotonic_s();
		return;
	}
	err = unwind_table_build(m->open_path, m->name, &rows, &n);
	if (err == -2)
		return; /* gone meanwhile (its process exited): asked for again if needed */
	u->objs = xrealloc(u->objs, (u->nobjs + 1) * sizeof(*u->objs));
	o = &u->objs[u->nobjs++];
	*o = (struct unwind_obj){.key = m->key, .mapped_at = monotonic_s()};
	if (err == 0 && n <= UINT32_MAX) {
		if (!take_rows(u, (__u32)n, &o->span.first))
			u->no_room++;
		else if (load_rows(u, rows, o->span.first, (__u32)n) == 0)
			o->span.count = (__u32)n;
	}
	free(rows);
	o->span.allocator = allocator_library(m);
	/* An object without rows is entered too: walks stop asking for it. */
	bpf_map_update_elem(u->objs_fd, &m->key, &o->span, BPF_ANY);
}

void unwinder_add_file(struct unwinder *u, const char *path)
{
	struct stat st;
	struct mapping m = {.open_path = path, .name = path};

	if (stat(path, &st))
		return;
	m.key = (struct unwind_key){.dev = (__u64)major(st.st_dev) << 20 | minor(st.st_dev),
				    .ino = st.st_ino};
	add_obj(u, &m);
}

typedef void (*mapping_fn)(struct unwinder *u, const struct mapping *m, void *ctx);

/* Each mapping of pid's code from a file. */
static void for_each_code_mapping(struct unwinder *u, pid_t pid, mapping_fn fn, void *ctx)
{
	char path[64], line[4096];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end, off, ino;
		unsigned int maj, min;
		char perms[5], file[80];
		int at = 0;

		if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu %n", &start, &end, perms, &off, &maj,
			   &min, &ino, &at) < 7 ||
		    perms[2] != 'x')
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(file, sizeof(file), "/proc/%d/map_files/%lx-%lx", pid, start, end);
		fn(u,
		   &(struct mapping){.key = {.dev = (__u64)maj << 20 | min, .ino = ino},
				     .open_path = file,
				     .name = line + at,
				     .start = start,
				     .end = end,
				     .off = off},
		   ctx);
	}
	fclose(f);
}

/* Each code area with its object's rows, the table built first if need be. */
static void add_mapping(struct unwinder *u, const struct mapping *m, void *ctx)
{
	struct proc_areas *pa = ctx;
	struct unwind_obj *o = NULL;

	if (m->key.ino) {
		add_obj(u, m);
		if (!(o = find_obj(u, &m->key)))
			return; /* gone meanwhile: a walk finds it if it is back */
	}
	if (pa->n < MAX_AREAS)
		pa->a[pa->n++] = (struct code_area){.start = m->start,
						    .end = m->end,
						    .off = m->off,
						    .first = o ? o->span.first : 0,
						    .count = o ? o->span.count : 0,
						    .allocator = o ? o->span.allocator : 0};
}

static bool has_area(const struct proc_areas *pa, const struct code_area *a)
{
	for (__u32 i = 0; i < pa->n && i < MAX_AREAS; i++)
		if (!memcmp(&pa->a[i], a, sizeof(*a)))
			return true;
	return false;
}

/* Threads' walks forget what they remember of areas and rows. */
static void new_epoch(struct unwinder *u)
{
	__atomic_add_fetch(u->epoch, 1, __ATOMIC_SEQ_CST);
}

void unwinder_add_pid(struct unwinder *u, pid_t pid)
{
	struct proc_areas pa = {0}, was;
	__u32 key = (__u32)pid;

	for_each_code_mapping(u, pid, add_mapping, &pa);
	if (!pa.n)
		return;
	/* An area gone (a dlclose) may hold other code next. */
	if (bpf_map_lookup_elem(u->areas_fd, &key, &was) == 0)
		for (__u32 i = 0; i < was.n && i < MAX_AREAS; i++)
			if (was.a[i].end && !has_area(&pa, &was.a[i])) {
				new_epoch(u);
				break;
			}
	bpf_map_update_elem(u->areas_fd, &key, &pa, BPF_ANY);
}

static void add_wanted(struct unwinder *u, const struct mapping *m, void *ctx)
{
	const struct unwind_key *want = ctx;

	if (m->key.ino && m->key.dev == want->dev && m->key.ino == want->ino)
		add_obj(u, m);
}

#define SERVE_MAX 256

void unwinder_serve(struct unwinder *u)
{
	struct unwind_key keys[SERVE_MAX], *prev = NULL;
	size_t n = 0;

	/* Those asked for now, at most SERVE_MAX: walks ask again meanwhile. */
	while (n < SERVE_MAX && bpf_map_get_next_key(u->wanted_fd, prev, &keys[n]) == 0) {
		prev = &keys[n];
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		__u32 tgid;

		if (bpf_map_lookup_elem(u->wanted_fd, &keys[i], &tgid) == 0 &&
		    !find_obj(u, &keys[i]))
			for_each_code_mapping(u, (pid_t)tgid, add_wanted, &keys[i]);
		/* One that cannot be built now (its process gone) is asked for again. */
		bpf_map_delete_elem(u->wanted_fd, &keys[i]);
	}
}

static void mark_mapping(struct unwinder *u, const struct mapping *m, void *ctx)
{
	struct unwind_obj *o = m->key.ino ? find_obj(u, &m->key) : NULL;

	(void)ctx;
	if (o)
		o->mapped_at = monotonic_s();
}

void unwinder_collect(struct unwinder *u, const pid_t *pids, size_t n, bool all)
{
	size_t kept = 0;
	double now = monotonic_s(); /* before the marking: what it marks is newer */

	release_freed(u);
	if (all) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		while (d && (e = readdir(d)))
			if (e->d_name[0] >= '1' && e->d_name[0] <= '9')
				for_each_code_mapping(u, atoi(e->d_name), mark_mapping, NULL);
		if (d)
			closedir(d);
	}
	for (size_t i = 0; i < n; i++)
		for_each_code_mapping(u, pids[i], mark_mapping, NULL);
	for (size_t i = 0; i < u->nobjs; i++) {
		struct unwind_obj *o = &u->objs[i];

		if (o->mapped_at >= now - u->keep_s) {
			u->objs[kept++] = *o;
			continue;
		}
		bpf_map_delete_elem(u->objs_fd, &o->key);
		if (!o->span.count)
			continue;
		u->freed = xrealloc(u->freed, (u->nfreed + 1) * sizeof(*u->freed));
		u->freed[u->nfreed++] = (struct extent){o->span.first, o->span.count};
		u->rows_used -= o->span.count;
	}
	if (kept < u->nobjs) {
		/* Areas and rows remembered may name the freed rows: each
		 * process's list and the shared rows start over. */
		__u32 key;
		struct {
			__u32 first, off;
		} row_key;

		while (bpf_map_get_next_key(u->areas_fd, NULL, &key) == 0)
			bpf_map_delete_elem(u->areas_fd, &key);
		while (bpf_map_get_next_key(u->row_cache_fd, NULL, &row_key) == 0)
			bpf_map_delete_elem(u->row_cache_fd, &row_key);
		new_epoch(u);
	}
	u->nobjs = kept;
}

void unwinder_free(struct unwinder *u)
{
	free(u->free);
	free(u->freed);
	free(u->objs);
}
