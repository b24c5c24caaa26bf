/* One report: what the text and JSON renderers print. */
#ifndef REPORT_H
#define REPORT_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "curve.h"
#include "memleak.h"
#include "reach.h"
#include "symbolize.h"
#include "verdict.h"

struct stack_report {
	__u64 stack_id;
	__u64 out_bytes, out_allocs; /* live (older than -o's limit, if any) */
	struct counts c;	     /* in all */
	bool kernel;	   /* a kernel stack (-k) */
	__u32 how;	   /* a user stack: how it was walked (UNWIND_*) */
	double growth_bps; /* outstanding bytes per second: the floor's trend */
	bool suspect;	   /* its own floor keeps rising */
	double oldest_age_s; /* of its oldest live block; 0: not known */
	bool scanned;		   /* the process's last scan found its blocks, */
	struct reach_counts reach; /* by kind */
	int nframes;
	struct frame *frames; /* innermost first */
};

struct proc_report {
	int pid;
	char comm[17];
	bool alive;
	bool watched; /* judged on anonymous RSS (plus kernel bytes with -k) */
	bool probed;  /* its allocator is probed: heap figures and stacks are real */
	bool pages;   /* --pages: heap and stacks count resident pages, not blocks */
	struct counts heap;
	bool has_kernel;      /* -k: the kernel figures below are traced */
	struct counts kernel; /* kernel allocations counted to it */
	unsigned long long rss_bytes;
	unsigned long long anon_bytes; /* RSS less file-backed and shared pages */
	double growth_bps;	       /* of the judged curve: heap, plus kernel with -k */
	double kernel_growth_bps;
	struct verdict verdict;
	bool scanned; /* a scan of its memory has been made: the last one's */
	struct reach_summary scan;
	/* The first nshown stacks are the report's (-T): suspects first, by
	 * growth; then by outstanding bytes. The rest follow them only when the
	 * report was built for a profile (report_options.keep_all). */
	int nstacks, nshown;
	struct stack_report *stacks;
	/* The heap adds up: the stacks shown, the user stacks after them (listed
	 * or not), and the blocks recorded without a stack (sampled out, or the
	 * stack table full). */
	struct {
		long long stacks, bytes, allocs;
	} stacks_rest;
	struct {
		long long bytes, allocs;
	} no_stack;
};

struct report {
	long seq;
	double elapsed_s;
	double cpu_ms; /* the tracer's CPU time to build it: map reads, verdicts, symbols */
	bool final;
	time_t wall;
	struct drops drops;
	unsigned long long nested_calls; /* allocator calls inside another, counted once */
	size_t stack_entries;		 /* in the stacks maps, at the last sweep */
	size_t stacks_reclaimed;	 /* so far */
	struct {
		size_t objects;		    /* with a table built (and without: none or no room) */
		size_t rows;		    /* in all tables, 8 bytes each */
		unsigned long long no_room; /* objects left without one: the rows map was full */
	} unwind;
	int nprocs;
	struct proc_report *procs; /* leaks first, then by verdict and growth */
	int nfull;		   /* the first nfull in full; the rest without stacks */
};

/* A process's memory curve, as --curve and --plot show it. */
struct curve_report {
	int pid;
	const char *comm;
	const struct curve *mem; /* the judged curve: heap (anonymous RSS if watched), + kernel with -k */
	const struct verdict *verdict;
	long long heap_bytes; /* outstanding, at the last sample */
	unsigned long long rss_bytes;
	bool has_kernel;	/* -k: kernel_bytes is traced */
	long long kernel_bytes;
	bool in_last_sample; /* the last sample added a point to its curve */
};

static inline long long outstanding_bytes(const struct counts *c)
{
	return (long long)(c->alloc_bytes - c->free_bytes);
}

/* Bytes in pages of the system's size (--pages: a huge page is many). */
static inline long long pages_in(long long bytes)
{
	return bytes / sysconf(_SC_PAGESIZE);
}

/* Pages mode: what the process's stacks hold as read together, the
 * listed ones, the rest and those pages without a stack. */
static inline long long pages_resident(const struct proc_report *p)
{
	long long sum = p->stacks_rest.bytes + p->no_stack.bytes;

	for (int i = 0; i < p->nshown; i++)
		if (!p->stacks[i].kernel)
			sum += (long long)p->stacks[i].out_bytes;
	return sum;
}

/* What a scan proves leaked: lost blocks and those only they reach. */
static inline __u64 leaked_bytes(const struct reach_counts *k)
{
	return k->bytes[REACH_LOST] + k->bytes[REACH_INDIRECT];
}

static inline __u64 leaked_allocs(const struct reach_counts *k)
{
	return k->allocs[REACH_LOST] + k->allocs[REACH_INDIRECT];
}

static inline long long outstanding_allocs(const struct counts *c)
{
	return (long long)(c->allocs - c->frees);
}

/* What a profile cannot give a stack to: the outstanding heap in no
 * listed stack (stacks not listed, or none recorded), the allocations made
 * there, and the kernel bytes in no listed kernel stack. */
struct unlisted {
	long long bytes, allocs;
	unsigned long long alloc_bytes, alloc_count;
	long long kernel_bytes, kernel_allocs;
};

static inline struct unlisted proc_unlisted(const struct proc_report *p)
{
	struct unlisted u = {
	    .bytes = outstanding_bytes(&p->heap),
	    .allocs = outstanding_allocs(&p->heap),
	    .alloc_bytes = p->heap.alloc_bytes,
	    .alloc_count = p->heap.allocs,
	    .kernel_bytes = outstanding_bytes(&p->kernel),
	    .kernel_allocs = outstanding_allocs(&p->kernel),
	};

	for (int i = 0; i < p->nstacks; i++) {
		const struct stack_report *st = &p->stacks[i];

		if (p->stacks[i].kernel) {
			u.kernel_bytes -= (long long)st->out_bytes;
			u.kernel_allocs -= (long long)st->out_allocs;
			continue;
		}
		u.bytes -= (long long)st->out_bytes;
		u.allocs -= (long long)st->out_allocs;
		u.alloc_bytes -=
		    st->c.alloc_bytes < u.alloc_bytes ? st->c.alloc_bytes : u.alloc_bytes;
		u.alloc_count -= st->c.allocs < u.alloc_count ? st->c.allocs : u.alloc_count;
	}
	return u;
}

/* Why a user stack ends early (UNWIND_CUT_*): NULL if it reaches the
 * program's first frame. */
const char *unwind_cut_name(__u32 how);

void report_text(FILE *out, const struct report *r);
void report_json(FILE *out, const struct report *r);
/* Profiles of the outstanding heap, written whole to path: 0, or -1 with
 * errno set. Every stack the report holds is in them (build it with
 * report_options.keep_all), and what no listed stack holds. */
int report_folded(const char *path, const struct report *r);
int report_pprof(const char *path, const struct report *r);

#endif
