/* The traced processes: what we know of each, and building a report of them. */
#ifndef TARGETS_H
#define TARGETS_H

#include <stdbool.h>
#include <sys/types.h>

#include "report.h"
#include "symbolize.h"

struct memleak_bpf;

struct prev_stack {
	__u64 stack_id;
	__u64 out_bytes;
};

struct target {
	pid_t pid;
	char comm[17];
	bool alive;
	bool gone; /* exited and shown in a report since: no longer listed */
	int pidfd; /* -1 if not watched through one */
	unsigned long long rss_bytes;
	struct symbolizer sym;
	double prev_time; /* of the previous report, for growth rates */
	long long prev_out;
	struct prev_stack *prev;
	size_t nprev;
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

void targets_report(struct target_set *ts, struct memleak_bpf *skel,
		    const struct report_options *ro, struct report *r);
void report_free(struct report *r);
void targets_free(struct target_set *ts);

#endif
