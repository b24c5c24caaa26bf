/* The default system-wide mode: watch every process's memory cheaply and
 * probe the allocator only of those whose curve leaves its band. */
#ifndef WATCH_H
#define WATCH_H

#include <stdbool.h>

#include "targets.h"

/* Add every user process in /proc that is not a target yet. */
void watch_scan(struct target_set *ts);
/* Drain the BPF lifecycle map (fd): ended targets are marked exited at once,
 * and, when watching, processes born since become targets. */
void watch_lifecycle(struct target_set *ts, int fd);
/* A watched process whose curve left its band and whose allocator is not
 * probed yet. */
bool watch_wants_probe(const struct target *t);

/* Seconds a probed process stays probed at least, however steady. */
#define WATCH_PROBE_MIN_S 20.0

/* A probed, watched process whose curve is steady again, probed long enough. */
bool watch_settled(const struct target *t, double now);

#endif
