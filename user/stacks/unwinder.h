/*
 * The unwind tables in the BPF maps: one per object (executable or library)
 * that a traced process maps, shared by every process mapping it, built
 * when a process is traced, when a walk meets an object without one (a
 * dlopen), and freed when no traced process maps the object any more; and
 * each traced process's list of code areas, which walks search before they
 * ask the kernel's memory map.
 */
#ifndef UNWINDER_H
#define UNWINDER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "memleak.h"

struct unwind_obj {
	struct unwind_key key;
	struct unwind_span span; /* count 0: no table (none could be built, or no room) */
	double mapped_at;	 /* when last seen mapped (monotonic seconds) */
};

struct extent {
	__u32 first, count;
};

struct unwinder_maps {
	int rows_fd, objs_fd, wanted_fd, areas_fd, row_cache_fd;
	__u32 *epoch; /* the walks' unwind_epoch */
};

struct unwinder {
	int rows_fd, objs_fd, wanted_fd, areas_fd, row_cache_fd;
	__u32 *epoch;
	__u32 capacity;		     /* rows */
	double keep_s;		     /* how long a table outlives the last mapping of its object */
	struct extent *free, *freed; /* free rows; rows freed at the last collection */
	size_t nfree, nfreed;
	struct unwind_obj *objs;
	size_t nobjs;
	size_t rows_used;
	unsigned long long no_room; /* objects left without a table: the rows map was full */
};

void unwinder_init(struct unwinder *u, const struct unwinder_maps *maps, __u32 capacity,
		   double keep_s);
/* The table of the object at path, as it will be mapped (a command about to run). */
void unwinder_add_file(struct unwinder *u, const char *path);
/* The tables of every object pid maps as code, and its list of code areas. */
void unwinder_add_pid(struct unwinder *u, pid_t pid);
/* Build the tables walks asked for. */
void unwinder_serve(struct unwinder *u);
/* Free the tables of objects none of pids (every process, if all) mapped for
 * keep_s seconds. */
void unwinder_collect(struct unwinder *u, const pid_t *pids, size_t n, bool all);
void unwinder_free(struct unwinder *u);

#endif
