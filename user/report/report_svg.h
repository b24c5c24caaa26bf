/* The memory curve as an SVG chart (--plot): one panel per process. */
#ifndef REPORT_SVG_H
#define REPORT_SVG_H

#include <stddef.h>

#include "targets.h"

/* Write the empty chart now, so a bad path fails before tracing. */
int svg_check(const char *path, const struct target_set *ts, char *err, size_t errlen);
/* Write the chart to path (through a temporary file, replaced at once). */
int svg_write(const char *path, const struct target_set *ts);

#endif
