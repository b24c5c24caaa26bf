/* The memory curve as an SVG chart (--plot): one panel per process. */
#ifndef REPORT_SVG_H
#define REPORT_SVG_H

#include <stddef.h>

#include "report.h"

/* Write the empty chart now, so a bad path fails before tracing. */
int svg_check(const char *path, char *err, size_t errlen);
/* Write the chart of curves[0..n) to path (through a temporary file,
 * replaced at once). */
int svg_write(const char *path, const struct curve_report *curves, int n);

#endif
