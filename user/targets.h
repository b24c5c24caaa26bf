/* The traced processes: what we know of each, and building a report of them. */
#ifndef TARGETS_H
#define TARGETS_H

#include <stdbool.h>
#include <sys/types.h>

#include "collect.h"
#include "curve.h"
#include "kallsyms.h"
#include "probes.h"
#include "report.h"
#include "retire.h"
#include "scan.h"
#include "symbolize.h"

/* One stack's outstanding bytes at each report, and their verdict. */
struct stack_history {
	__u64 stack_id;
	bool kernel; /* a kernel stack, from the -k maps */
	struct curve curve;
	struct verdict verdict;
	struct alloc_key oldest; /* its oldest live block when a walk last looked */
	__u64 oldest_ns;	 /* and when that was allocated; 0: never looked */
};

struct target {
	pid_t pid;
	unsigned long long started; /* clock ticks after boot (/proc/PID/stat): the pid's process */
	char comm[17];
	bool alive;
	bool gone;	   /* exited and shown in a report since: no longer listed */
	bool kept;	   /* listed to the end, exited or not (a launched command: targets.t[0]) */
	bool watched;	   /* judged on its anonymous RSS: its allocator is probed once it grows */
	bool probed;	   /* a watched process whose allocator probes are attached */
	bool exec_pending; /* ran a new program: its own probes are to be redone */
	bool born;	   /* -p: a traced process's new child, to be probed */
	bool pages;	   /* --pages: its resident pages are counted, not its heap */
	struct probes probes; /* a watched process's own, while probed */
	unsigned unprobing;   /* its probes' detachment (a ticket; 0: none): its heap records go after */
	double probed_at;
	int pidfd; /* -1 if not watched through one */
	unsigned long long rss_bytes;
	unsigned long long
	    anon_bytes;		/* RSS less file-backed pages: what a watched one is judged on */
	long long heap_bytes;	/* outstanding, at the last sample */
	long long kernel_bytes; /* with -k */
	struct symbolizer sym;
	struct curve mem; /* the judged curve: heap (anonymous RSS if watched), + kernel with -k */
	struct verdict verdict;
	struct curve kernel; /* kernel bytes alone, for their growth */
	struct verdict kernel_verdict;
	double prev_time; /* of the previous report, for growth while warming up */
	long long prev_mem, prev_kernel;
	struct retired *retired; /* exited: its figures, out of the maps */
	long sampled;		 /* the last sample that added a point */
	bool last_point;	 /* exited, and its figures at exit are its last point */
	bool scanned;		 /* its memory was scanned: the last scan's */
	struct scan_result scan; /* figures */
	double scanned_at;	 /* monotonic_s() then */
	struct stack_history *stacks;
	size_t nstacks, stacks_cap;
	unsigned *stack_index; /* open addressing: 1 + index into stacks; 0 empty */
	size_t index_slots;    /* a power of two, at least twice nstacks */
};

struct target_set {
	struct target *t;
	int n;
	bool every_process; /* system-wide: add every process that allocates */
	bool watching;	    /* new targets are watched (system-wide, no --all-stacks) */
	bool follow;	    /* -p: the children of traced processes are traced too */
	double start_time;
	long samples; /* taken so far */
	struct heap_maps heap;	 /* the user heap's accounting */
	struct heap_maps kernel; /* the kernel's (-k); procs < 0 without */
	struct kallsyms ksyms;
	__u64 older_ns;		 /* -o: stacks count only blocks older than this */
	size_t stack_entries;	 /* in the stacks maps, at the last sweep */
	size_t stacks_reclaimed; /* by every sweep so far */
};

static inline bool targets_kernel(const struct target_set *ts)
{
	return ts->kernel.procs >= 0;
}

/* pid KERNEL_OWNER stands for the kernel itself. */
struct target *targets_add(struct target_set *ts, pid_t pid);
/* Whether its curve is its anonymous RSS (watched, or --pages), not its heap. */
static inline bool target_on_rss(const struct target *t)
{
	return t->watched || t->pages;
}
struct target *targets_find(struct target_set *ts, pid_t pid);
/* Whether the process now under pid is none of the targets: not one alive,
 * nor one that exited (a pid taken again before it was forgotten). */
bool targets_newcomer(const struct target_set *ts, pid_t pid);
/* Reread what /proc says of a live target: name, RSS, memory map. */
void target_refresh(struct target *t);
/* The process has exited: its probe links close, in the background. */
void target_exited(struct target *t);
/* A watched process's probes come off, in the background: its heap figures
 * and stacks are dropped, from the maps too once the probes are off, which
 * targets_forget_unprobed (at each sample) sees to. */
void target_unprobe(struct target *t);
void targets_forget_unprobed(struct target_set *ts);

struct report_options {
	int top;
	int max_procs; /* processes in full; the rest summarized */
	__u64 older_ns;
	bool keep_all; /* every stack of the processes in full, not only the top (profiles) */
};

/* Add a point to every live target's curve and judge it again; one that
 * exited since the last sample gets its last point, its figures at exit. */
void targets_sample(struct target_set *ts);
/* Reclaim the stacks that no process's counts or live blocks refer to. */
void targets_sweep_stacks(struct target_set *ts);

void targets_report(struct target_set *ts, const struct report_options *ro, struct report *r);
/* Every target's curve as --curve and --plot show it, pointing into ts
 * (valid until it changes): an array of *n, to free. */
struct curve_report *targets_curves(const struct target_set *ts, int *n);
void report_free(struct report *r);
/* What the BPF programs dropped so far, user heap and kernel: live. */
void targets_drops(const struct target_set *ts, struct drops *sum);
void targets_free(struct target_set *ts);
/* Before anything else: the user heap's maps; no kernel tracing yet. */
void targets_init(struct target_set *ts, const struct heap_maps *heap);

#endif
