/* Processes that have exited: their figures taken out of the BPF maps at once,
 * so that the maps hold only live processes however many come and go, and
 * kept here until their last report. */
#ifndef RETIRE_H
#define RETIRE_H

#include <stdbool.h>
#include <stddef.h>

#include "collect.h"

struct saved_frames {
	__u64 stack_id;
	bool kernel;
	int n;
	__u32 how;
	__u64 ips[MAX_FRAMES];
};

struct retired {
	struct proc_counts heap, kernel; /* totals and name, from each object */
	struct stack_stat *stacks[2];	 /* user heap's, kernel's: as a snapshot sorts them */
	size_t nstacks[2];
	struct saved_frames *frames; /* of the stacks still holding blocks: the only ones shown */
	size_t nframes;
};

/*
 * Read the figures of tgids[0..n) from both objects' maps (maps[1] may be
 * unloaded: procs < 0), then delete their entries. out[i] gets tgids[i]'s.
 * Returns -errno if the live blocks could not all be read.
 */
int retire_take(const struct heap_maps *maps[2], const __u32 *tgids, size_t n, __u64 older_ns,
		struct retired **out);
/* The frames kept for a stack; 0 if none were. */
int retired_frames(const struct retired *r, __u64 stack_id, bool kernel, __u64 *ips, __u32 *how);
void retired_free(struct retired *r);

#endif
