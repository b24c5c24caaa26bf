/*
 * The loader's side of the code areas (user/stacks/unwinder.c), on real BPF maps
 * (root, as make test runs): this process's code areas listed with their
 * objects' rows, none overlapping; a dlopen adds one and keeps the epoch; its
 * dlclose takes it away and starts a new epoch (the walks' memory of it may
 * name other code next); freeing the tables empties every list and the
 * shared row cache. (An exec empties a process's list in BPF: the e2e exec
 * tests.)
 */
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "unit.h"
#include "unwinder.h"

#define DLLEAK "build/workloads/libdlleak.so"

static int areas_of(int fd, struct proc_areas *pa)
{
	__u32 key = (__u32)getpid();

	memset(pa, 0, sizeof(*pa));
	return bpf_map_lookup_elem(fd, &key, pa);
}

/* The listed area holding addr, or NULL. */
static const struct code_area *holding(const struct proc_areas *pa, uintptr_t addr)
{
	for (__u32 i = 0; i < pa->n && i < MAX_AREAS; i++)
		if (addr >= pa->a[i].start && addr < pa->a[i].end)
			return &pa->a[i];
	return NULL;
}

static int entries(int fd, size_t key_size)
{
	char key[64], next[64];
	int n = 0;

	for (void *prev = NULL; key_size <= sizeof(key) && !bpf_map_get_next_key(fd, prev, next);
	     prev = key, n++)
		memcpy(key, next, key_size);
	return n;
}

void test_unwinder_area_list(void)
{
	__u32 epoch = 1;
	struct unwinder_maps maps = {
	    .rows_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "rows", 4, sizeof(struct unwind_row),
				      1 << 20, NULL),
	    .objs_fd = bpf_map_create(BPF_MAP_TYPE_HASH, "objs", sizeof(struct unwind_key),
				      sizeof(struct unwind_span), 256, NULL),
	    .wanted_fd = bpf_map_create(BPF_MAP_TYPE_HASH, "wanted", sizeof(struct unwind_key),
					4, 16, NULL),
	    .areas_fd = bpf_map_create(BPF_MAP_TYPE_HASH, "areas", 4, sizeof(struct proc_areas),
				       16, NULL),
	    .row_cache_fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "row_cache", 8,
					   sizeof(struct unwind_row), 64, NULL),
	    .epoch = &epoch};
	struct unwinder u;
	struct proc_areas pa;
	const struct code_area *a;
	void *lib, *fn;
	__u64 cached = 1;
	struct unwind_row row = {0};

	CHECK(maps.rows_fd >= 0 && maps.objs_fd >= 0 && maps.wanted_fd >= 0 &&
	      maps.areas_fd >= 0 && maps.row_cache_fd >= 0);
	if (maps.rows_fd < 0 || maps.areas_fd < 0 || maps.row_cache_fd < 0)
		return;
	unwinder_init(&u, &maps, 1 << 20, 0);
	unwinder_add_pid(&u, getpid());
	CHECK(areas_of(maps.areas_fd, &pa) == 0 && pa.n >= 3 && pa.n <= MAX_AREAS);
	a = holding(&pa, (uintptr_t)test_unwinder_area_list);
	CHECK(a && a->count > 0); /* this program, with its rows */
	a = holding(&pa, (uintptr_t)dlsym(RTLD_DEFAULT, "malloc"));
	CHECK(a && a->count > 1000); /* libc */
	for (__u32 i = 0; i < pa.n; i++)
		for (__u32 j = 0; j < pa.n; j++)
			CHECK(pa.a[i].start < pa.a[i].end &&
			      (i == j || pa.a[i].end <= pa.a[j].start || pa.a[j].end <= pa.a[i].start));

	lib = dlopen(DLLEAK, RTLD_NOW);
	CHECK(lib);
	fn = lib ? dlsym(lib, "dl_leak") : NULL;
	CHECK(fn);
	unwinder_add_pid(&u, getpid());
	CHECK(areas_of(maps.areas_fd, &pa) == 0);
	a = holding(&pa, (uintptr_t)fn);
	CHECK(a && a->count > 0 && epoch == 1); /* added: what walks remember stays */

	if (lib)
		dlclose(lib);
	unwinder_add_pid(&u, getpid());
	CHECK(areas_of(maps.areas_fd, &pa) == 0 && !holding(&pa, (uintptr_t)fn));
	CHECK(epoch == 2); /* gone: walks forget */

	CHECK(bpf_map_update_elem(maps.row_cache_fd, &cached, &row, BPF_ANY) == 0);
	unwinder_collect(&u, NULL, 0, false); /* nothing marked mapped: all freed */
	CHECK(entries(maps.areas_fd, 4) == 0 && entries(maps.row_cache_fd, 8) == 0);
	CHECK(entries(maps.objs_fd, sizeof(struct unwind_key)) == 0 && epoch == 3);
	unwinder_free(&u);
	close(maps.rows_fd);
	close(maps.objs_fd);
	close(maps.wanted_fd);
	close(maps.areas_fd);
	close(maps.row_cache_fd);
}
