/* Small helpers shared by every module: messages, numbers, clocks. */
#ifndef UTIL_H
#define UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* One line on stderr, prefixed with the program's name. */
void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

bool parse_u64(const char *s, uint64_t *out);
bool parse_positive_double(const char *s, double *out);

/* "12.4 MiB"; "512 B" below 1 KiB. */
const char *human_bytes(double bytes, char *buf, size_t len);
/* "10,233" */
const char *group_digits(uint64_t n, char *buf, size_t len);

double monotonic_s(void);
uint64_t monotonic_ns(void);

void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
/* qsort and bsearch order of uint32_t values (process ids). */
int cmp_u32(const void *a, const void *b);

/* A number field of /proc/PID/status ("Tgid", "TracerPid"); 0 if it cannot be read. */
int proc_status_int(pid_t pid, const char *field);

#endif
