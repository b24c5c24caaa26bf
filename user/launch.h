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
	int execs; /* exec stops seen: the first is the command's own */
};

enum launch_state {
	LAUNCH_RUNNING,
	LAUNCH_EXITED,
	LAUNCH_EXECED, /* it ran a new program and is held until launch_resume */
};

/* Resolve the command as execvp would, fork, and hold the child at the gate. */
int launch_fork(char **argv, struct child *c, char *err, size_t errlen);
/* Let the child exec; fails with the reason if the command could not run. */
int launch_release(struct child *c, char *err, size_t errlen);
/* Reap or resume the child without blocking; status is set once it has
 * exited. At its exit stop, sym gets its final map. An exec (from any of its
 * threads) holds it before the new program's first instruction, so that
 * the new program's allocator can be probed first. */
enum launch_state launch_poll(struct child *c, struct symbolizer *sym, int *status);
void launch_resume(struct child *c);

#endif
