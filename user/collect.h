/* Reading the BPF maps into a snapshot of per-process and per-stack figures. */
#ifndef COLLECT_H
#define COLLECT_H

#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#include "memleak.h"

/* The maps of one BPF object's accounting (heap.bpf.h): the user heap's or
 * the kernel's. procs < 0: that object is not loaded. */
struct heap_maps {
	int allocs, procs, stack_counts, stacks;
	const struct drops *drops; /* the object's live counters */
	const __u64 *nested_calls; /* calls inside a probed call (user heap only) */
};

struct image;

struct stack_stat {
	__u32 tgid;
	__u64 stack_id;
	struct counts c;
	__u64 out_bytes; /* live allocations (older than the -o limit, if any) */
	__u64 out_allocs;
	__u64 oldest_ns; /* allocation time of the oldest live one; 0 if none */
};

struct snapshot {
	struct drops drops;
	struct image *images; /* processes that exec'd: their current image */
	size_t nimages;
	struct stack_stat *stacks; /* sorted by tgid, then outstanding bytes, largest first */
	size_t nstacks;
};

/* Only processes for which want(tgid) holds are read. */
typedef int (*want_fn)(__u32 tgid, void *ctx);

/* Returns -errno if the live blocks could not all be read (the snapshot
 * holds what was). */
int snapshot_read(const struct heap_maps *m, want_fn want, void *ctx, __u64 older_than_ns,
		  struct snapshot *s);
void snapshot_free(struct snapshot *s);
/* The totals and name of one process; zeros if it made no traced allocation. */
struct proc_counts snapshot_proc(const struct heap_maps *m, __u32 tgid);
/* Delete every map entry of processes that have exited: their totals, their
 * stacks' totals and the live allocations they own, in one walk of each map.
 * The stacks map is shared: see snapshot_sweep_stacks. Sorts tgids. */
int snapshot_forget(const struct heap_maps *m, __u32 *tgids, size_t n);
/* Delete the stacks that no counts and no live block refer to, and that no
 * allocation took while this ran: the stacks map stays bounded however
 * many processes come and go. */
int snapshot_sweep_stacks(const struct heap_maps *m, size_t *kept, size_t *reclaimed);
/* The frames of a stack, innermost first, and how they were walked
 * (UNWIND_*); returns their number. */
int snapshot_frames(const struct heap_maps *m, __u64 stack_id, __u64 *ips, __u32 *how);

#endif
