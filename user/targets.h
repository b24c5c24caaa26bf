/* The traced processes: what we know of each, and building a report of them. */
#ifndef TARGETS_H
#define TARGETS_H

#include <stdbool.h>
#include <sys/types.h>

#include "curve.h"
#include "report.h"
#include "symbolize.h"

struct memleak_bpf;

/* One stack's outstanding bytes at each report, and their verdict. */
struct stack_history {
	__u64 stack_id;
	struct curve curve;
	struct verdict verdict;
};

struct target {
	pid_t pid;
	char comm[17];
	bool alive;
	bool gone; /* exited and shown in a report since: no longer listed */
	int pidfd; /* -1 if not watched through one */
	unsigned long long rss_bytes;
	struct symbolizer sym;
	struct curve heap; /* outstanding heap bytes, sampled */
	struct verdict verdict;
	double prev_time; /* of the previous report, for growth while warming up */
	long long prev_out;
	struct stack_history *stacks;
	size_t nstacks;
};

struct target_set {
	struct target *t;
	int n;
	bool every_process; /* system-wide: add every process that allocates */
	double start_time;
};

struct target *targets_add(struct target_set *ts, pid_t pid);
struct target *targets_find(struct target_set *ts, pid_t pid);
/* Reread what /proc says of a live target: name, RSS, memory map. */
void target_refresh(struct target *t);
void target_exited(struct target *t);

struct report_options {
	int top;
	__u64 older_ns;
};

/* Add a point to every live target's curve and judge it again. */
void targets_sample(struct target_set *ts, struct memleak_bpf *skel);
bool targets_any_leak(const struct target_set *ts);

void targets_report(struct target_set *ts, struct memleak_bpf *skel,
		    const struct report_options *ro, struct report *r);
void report_free(struct report *r);
void targets_free(struct target_set *ts);

#endif
