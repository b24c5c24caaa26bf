/* The memory curve as CSV (--curve): one row per process per sample. */
#ifndef REPORT_CSV_H
#define REPORT_CSV_H

#include <stdio.h>

#include "targets.h"

FILE *csv_open(const char *path, char *err, size_t errlen);
void csv_rows(FILE *out, const struct target_set *ts);

#endif
