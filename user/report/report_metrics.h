/* A report as Prometheus metrics, for the --listen exporter. */
#ifndef REPORT_METRICS_H
#define REPORT_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "report.h"

/* The tracer's own state, as of the last sample. */
struct tracer_health {
	struct drops drops;
	long samples, reports;
	double last_sample_time; /* seconds since the epoch; 0: none yet */
	size_t stack_entries, stacks_capacity;
	size_t unwind_rows, unwind_rows_capacity;
};

/* The processes of a report as metrics (to free): the Prometheus text
 * format 0.0.4, or OpenMetrics 1.0 text. */
char *metrics_procs(const struct report *r, bool openmetrics);
/* The page: those, then the tracer's health (and # EOF for OpenMetrics). */
char *metrics_page(const char *procs, const struct tracer_health *h, bool openmetrics, size_t *len);

#endif
