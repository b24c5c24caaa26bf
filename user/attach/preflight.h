/* Checks of the machine before any BPF is loaded, each with one clear message. */
#ifndef PREFLIGHT_H
#define PREFLIGHT_H

#include <stddef.h>

int check_privileges(char *err, size_t errlen);
int check_btf(char *err, size_t errlen);
/* Mount tracefs at /sys/kernel/tracing if it is not mounted. */
int ensure_tracefs(char *err, size_t errlen);

#endif
