/* A report as Prometheus metrics, for the --listen exporter. */
#ifndef REPORT_METRICS_H
#define REPORT_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "report.h"

/* What the report does not hold of the tracer's own state. */
struct tracer_health {
	long samples;
	double last_sample_time; /* seconds since the epoch; 0: none yet */
	size_t stacks_capacity;
	size_t unwind_rows_capacity;
};

/* The page (to free) and its length: the Prometheus text format 0.0.4, or
 * OpenMetrics 1.0 text. */
char *metrics_render(const struct report *r, const struct tracer_health *h, bool openmetrics,
		     size_t *len);

#endif
