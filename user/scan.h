/*
 * A reachability scan of one process (judge/reach.h): its live blocks from
 * the user heap's table, its threads' registers and stacks, and its
 * writable memory read while every thread is held (attach/freeze.h, or a
 * launched command's exit stop).
 */
#ifndef SCAN_H
#define SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/user.h>

#include "collect.h"
#include "reach.h"

struct scan_stack {
	__u64 stack_id;
	struct reach_counts k;
};

struct scan_result {
	struct reach_summary sum;
	struct scan_stack *stacks; /* sorted by stack id */
	size_t nstacks;
};

/* Scan pid, whose threads are held: regs[0..n) are theirs (a thread not
 * among them has its whole stack read). */
int scan_held(const struct heap_maps *m, pid_t pid, const struct user_regs_struct *regs, size_t n,
	      struct scan_result *out, char *err, size_t errlen);
/* Hold every thread of a live process, scan it, let them go. */
int scan_live(const struct heap_maps *m, pid_t pid, struct scan_result *out, char *err,
	      size_t errlen);
/* A stack's kinds, NULL if the scan found none of its blocks. */
const struct reach_counts *scan_stack_kinds(const struct scan_result *s, __u64 stack_id);
void scan_result_free(struct scan_result *s);

#endif
