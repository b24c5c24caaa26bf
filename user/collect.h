/* Reading the BPF maps into a snapshot of per-process and per-stack figures. */
#ifndef COLLECT_H
#define COLLECT_H

#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#include "memleak.h"

struct memleak_bpf;

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
	struct stack_stat *stacks; /* sorted by tgid, then outstanding bytes, largest first */
	size_t nstacks;
};

/* Only processes for which want(tgid) holds are read. */
typedef int (*want_fn)(__u32 tgid, void *ctx);

int snapshot_read(struct memleak_bpf *skel, want_fn want, void *ctx, __u64 older_than_ns,
		  struct snapshot *s);
void snapshot_free(struct snapshot *s);
/* The totals of one process; zeros if it made no traced allocation. */
struct counts snapshot_proc(struct memleak_bpf *skel, __u32 tgid);
/* Delete every map entry of a process that has exited: its totals, its
 * stacks' totals and its live allocations. The stacks map is shared. */
void snapshot_forget(struct memleak_bpf *skel, __u32 tgid);
/* The frames of a stack, innermost first; returns their number. */
int snapshot_frames(struct memleak_bpf *skel, __u64 stack_id, __u64 *ips);

#endif
