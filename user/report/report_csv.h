/* The memory curve as CSV (--curve): one row per process per sample. */
#ifndef REPORT_CSV_H
#define REPORT_CSV_H

#include <stdio.h>

#include "report.h"

/* Open path and write the header; NULL with the reason if it cannot be written. */
FILE *csv_open(const char *path, char *err, size_t errlen);
/* The newest point of each of curves[0..n) in the last sample. Returns -1
 * with errno set if the rows could not be written. */
int csv_rows(FILE *out, const struct curve_report *curves, int n);

#endif
