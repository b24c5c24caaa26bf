/*
 * A report as Prometheus metrics: the text exposition format (0.0.4), or
 * OpenMetrics 1.0 (counter families named without _total, a final # EOF).
 * Per process shown in full: labels pid and comm. The processes past
 * --max-procs are summed into one series labelled pid="other".
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "report_metrics.h"
#include "util.h"

struct page {
	char *buf;
	size_t len, cap;
	bool openmetrics;
};

static void put(struct page *pg, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(pg->buf + pg->len, pg->cap - pg->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < pg->cap - pg->len)
			break;
		pg->cap = pg->cap * 2 + (size_t)n + 1;
		pg->buf = xrealloc(pg->buf, pg->cap);
	}
	pg->len += (size_t)n;
}

/* A family's HELP and TYPE lines. A counter's samples end in _total; in
 * OpenMetrics its family is named without it. */
static void family(struct page *pg, const char *name, const char *type, const char *help)
{
	size_t len = strlen(name);

	if (pg->openmetrics && !strcmp(type, "counter") && len > 6 &&
	    !strcmp(name + len - 6, "_total"))
		len -= 6;
	put(pg, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, name, help, (int)len, name, type);
}

/* A label value, escaped as both formats want: \\, \" and \n. */
static void put_label_value(struct page *pg, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			put(pg, "\\%c", *v);
		else if (*v == '\n')
			put(pg, "\\n");
		else
			put(pg, "%c", *v);
	}
}

static void proc_labels(struct page *pg, const struct proc_report *p)
{
	put(pg, "{pid=\"%d\",comm=\"", p->pid);
	put_label_value(pg, p->comm);
	put(pg, "\"");
}

enum field {
	HEAP_BYTES,
	HEAP_BLOCKS,
	RSS_BYTES,
	RSS_ANON_BYTES,
	KERNEL_BYTES,
	GROWTH,
	BAND_LOW,
	BAND_HIGH,
	ALLOCS,
	FREES,
	ALLOC_BYTES,
	FREE_BYTES,
	LOST_BYTES,
};

static const struct metric {
	const char *name, *type, *help;
	bool summed; /* also for the processes past --max-procs, summed */
} metrics[] = {
    [HEAP_BYTES] = {"memleak_process_heap_bytes", "gauge",
		    "Heap bytes allocated through the traced allocator and not freed.", true},
    [HEAP_BLOCKS] = {"memleak_process_heap_blocks", "gauge",
		     "Heap blocks allocated through the traced allocator and not freed.", true},
    [RSS_BYTES] = {"memleak_process_rss_bytes", "gauge", "Resident set size.", true},
    [RSS_ANON_BYTES] = {"memleak_process_rss_anon_bytes", "gauge",
			"Resident anonymous memory (RSS less file-backed and shared pages).", true},
    [KERNEL_BYTES] = {"memleak_process_kernel_bytes", "gauge",
		      "Kernel memory allocated for the process and not freed (-k).", true},
    [GROWTH] = {"memleak_process_growth_bytes_per_second", "gauge",
		"Growth of the judged memory curve (heap, or anonymous RSS while only watched).",
		false},
    [BAND_LOW] = {"memleak_process_band_low_bytes", "gauge",
		  "Low edge of the band the curve settled in.", false},
    [BAND_HIGH] = {"memleak_process_band_high_bytes", "gauge",
		   "High edge of the band the curve settled in.", false},
    [ALLOCS] = {"memleak_process_heap_allocations_total", "counter",
		"Allocations made through the traced allocator.", false},
    [FREES] = {"memleak_process_heap_frees_total", "counter", "Frees of traced allocations.",
	       false},
    [ALLOC_BYTES] = {"memleak_process_heap_allocated_bytes_total", "counter",
		     "Bytes allocated through the traced allocator.", false},
    [FREE_BYTES] = {"memleak_process_heap_freed_bytes_total", "counter",
		    "Bytes of traced allocations freed.", false},
    [LOST_BYTES] = {"memleak_process_lost_bytes", "gauge",
		    "Heap bytes the last scan found nothing points to (lost and indirect).", true},
};

static bool has_field(const struct proc_report *p, enum field f)
{
	switch (f) {
	case HEAP_BYTES:
	case HEAP_BLOCKS:
	case ALLOCS:
	case FREES:
	case ALLOC_BYTES:
	case FREE_BYTES:
		return p->probed && p->pid != KERNEL_OWNER;
	case RSS_BYTES:
	case RSS_ANON_BYTES:
		return p->pid != KERNEL_OWNER;
	case KERNEL_BYTES:
		return p->has_kernel;
	case BAND_LOW:
	case BAND_HIGH:
		return verdict_has_band(&p->verdict);
	case GROWTH:
		return true;
	case LOST_BYTES:
		return p->scanned;
	}
	return false;
}

static double field(const struct proc_report *p, enum field f)
{
	switch (f) {
	case HEAP_BYTES:
		return (double)outstanding_bytes(&p->heap);
	case HEAP_BLOCKS:
		return (double)outstanding_allocs(&p->heap);
	case RSS_BYTES:
		return (double)p->rss_bytes;
	case RSS_ANON_BYTES:
		return (double)p->anon_bytes;
	case KERNEL_BYTES:
		return (double)outstanding_bytes(&p->kernel);
	case GROWTH:
		return p->growth_bps;
	case BAND_LOW:
		return p->verdict.band_low;
	case BAND_HIGH:
		return p->verdict.band_high;
	case ALLOCS:
		return (double)p->heap.allocs;
	case FREES:
		return (double)p->heap.frees;
	case ALLOC_BYTES:
		return (double)p->heap.alloc_bytes;
	case FREE_BYTES:
		return (double)p->heap.free_bytes;
	case LOST_BYTES:
		return (double)leaked_bytes(&p->scan.total);
	}
	return 0;
}

static void put_field(struct page *pg, const struct report *r, enum field f)
{
	const struct metric *m = &metrics[f];
	double rest = 0;
	bool any_rest = false;

	family(pg, m->name, m->type, m->help);
	for (int i = 0; i < r->nprocs; i++) {
		const struct proc_report *p = &r->procs[i];

		if (!has_field(p, f))
			continue;
		if (i >= r->nfull) {
			rest += field(p, f), any_rest = true;
			continue;
		}
		put(pg, "%s", m->name);
		proc_labels(pg, p);
		put(pg, "} %.17g\n", field(p, f));
	}
	if (m->summed && any_rest)
		put(pg, "%s{pid=\"other\",comm=\"\"} %.17g\n", m->name, rest);
}

/* The verdict as a state set: one series per state, 1 for the current one. */
static void put_verdicts(struct page *pg, const struct report *r)
{
	static const enum verdict_state states[] = {VERDICT_WARMUP, VERDICT_STEADY, VERDICT_GROWING,
						    VERDICT_LEAK, VERDICT_RECOVERED};
	const char *name = "memleak_process_verdict";

	family(pg, name, "gauge",
	       "The verdict on the process's memory curve: 1 for its current state.");
	for (int i = 0; i < r->nprocs && i < r->nfull; i++)
		for (size_t k = 0; k < ARRAY_SIZE(states); k++) {
			put(pg, "%s", name);
			proc_labels(pg, &r->procs[i]);
			put(pg, ",state=\"%s\"} %d\n", verdict_name(states[k]),
			    r->procs[i].verdict.state == states[k]);
		}
	name = "memleak_processes";
	family(pg, name, "gauge", "Traced or watched processes, by verdict.");
	for (size_t k = 0; k < ARRAY_SIZE(states); k++) {
		int n = 0;

		for (int i = 0; i < r->nprocs; i++)
			n += r->procs[i].verdict.state == states[k];
		put(pg, "%s{state=\"%s\"} %d\n", name, verdict_name(states[k]), n);
	}
}

static void put_health(struct page *pg, const struct tracer_health *h)
{
	static const char *const reasons[] = {"events",
					      "allocs_map_full",
					      "stacks",
					      "stacks_map_failed",
					      "stack_counts_full",
					      "procs_map_full",
					      "lifecycle_map_full",
					      "calls_too_deep"};
	const struct drops *d = &h->drops;
	const __u64 dropped[] = {d->events,
				 d->allocs_map_full,
				 d->stacks,
				 d->stacks_map_failed,
				 d->stack_counts_full,
				 d->procs_map_full,
				 d->lifecycle_map_full,
				 d->calls_too_deep};

	family(pg, "memleak_tracer_dropped_total", "counter",
	       "Events the BPF programs could not record in full, by reason (stacks: "
	       "allocations recorded without their stack).");
	for (size_t i = 0; i < ARRAY_SIZE(reasons); i++)
		put(pg, "memleak_tracer_dropped_total{reason=\"%s\"} %llu\n", reasons[i],
		    (unsigned long long)dropped[i]);
	family(pg, "memleak_tracer_samples_total", "counter", "Samples of every curve taken.");
	put(pg, "memleak_tracer_samples_total %ld\n", h->samples);
	family(pg, "memleak_tracer_last_sample_timestamp_seconds", "gauge",
	       "When the last sample was taken, in seconds since the epoch.");
	put(pg, "memleak_tracer_last_sample_timestamp_seconds %.3f\n", h->last_sample_time);
	family(pg, "memleak_tracer_reports_total", "counter", "Reports made.");
	put(pg, "memleak_tracer_reports_total %ld\n", h->reports);
	family(pg, "memleak_tracer_map_entries", "gauge",
	       "Entries in the tracer's BPF maps (stacks: at the last sweep).");
	put(pg, "memleak_tracer_map_entries{map=\"stacks\"} %zu\n", h->stack_entries);
	put(pg, "memleak_tracer_map_entries{map=\"unwind_rows\"} %zu\n", h->unwind_rows);
	family(pg, "memleak_tracer_map_capacity", "gauge", "Entries the tracer's BPF maps hold.");
	put(pg, "memleak_tracer_map_capacity{map=\"stacks\"} %zu\n", h->stacks_capacity);
	put(pg, "memleak_tracer_map_capacity{map=\"unwind_rows\"} %zu\n", h->unwind_rows_capacity);
}

static struct page new_page(bool openmetrics)
{
	return (struct page){.buf = xcalloc(4096, 1), .cap = 4096, .openmetrics = openmetrics};
}

char *metrics_procs(const struct report *r, bool openmetrics)
{
	struct page pg = new_page(openmetrics);

	for (enum field f = HEAP_BYTES; f <= LOST_BYTES; f++)
		put_field(&pg, r, f);
	put_verdicts(&pg, r);
	return pg.buf;
}

char *metrics_page(const char *procs, const struct tracer_health *h, bool openmetrics, size_t *len)
{
	struct page pg = new_page(openmetrics);

	put(&pg, "%s", procs);
	put_health(&pg, h);
	if (openmetrics)
		put(&pg, "# EOF\n");
	*len = pg.len;
	return pg.buf;
}
