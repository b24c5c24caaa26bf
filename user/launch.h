/* Starting `-- COMMAND`: held at a gate until the probes are attached, then exec'd. */
#ifndef LAUNCH_H
#define LAUNCH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct symbolizer;

struct child {
	pid_t pid;
	int gate;   /* write end: closing it lets the child exec */
	int report; /* read end: errno of a failed exec, or EOF on success */
	char path[PATH_MAX];
};

/* Resolve the command as execvp would, fork, and hold the child at the gate. */
int launch_fork(char **argv, struct child *c, char *err, size_t errlen);
/* Let the child exec; fails with the reason if the command could not run. */
int launch_release(struct child *c, char *err, size_t errlen);
/* Reap or resume the child without blocking: 1 with its exit status once it
 * has ended, 0 while it runs. At its exit stop, sym gets its final map. */
int launch_poll(struct child *c, struct symbolizer *sym, int *status);

#endif
