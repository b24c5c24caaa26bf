/*
 * Starting `-- COMMAND` and standing beside it: forked before the tracer
 * changes anything a child inherits (signal mask, limits, threads), held at
 * a gate until the probes are attached, then exec'd; traced (ptrace) only to
 * stop it at its execs and its leader's exit, and (following) each process
 * it or its descendants start at its birth, execs and exit; a signal the
 * tracer gets is passed on unless the command got it too.
 */
#ifndef LAUNCH_H
#define LAUNCH_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/user.h>

#include "freeze.h"

struct child {
	pid_t pid;
	int gate;   /* write end: a byte on it lets the child exec */
	int report; /* read end: errno of a failed exec, or EOF on success */
	char path[PATH_MAX];
	int execs;   /* exec stops seen: the first is the command's own */
	int wstatus; /* its wait status, once it has exited */
	/* Deliveries of each signal the command took that no signal of the
	 * tracer's has been matched with yet, and when the last one was. */
	int unmatched[NSIG];
	double delivered_at[NSIG];
	int claimed[NSIG]; /* seen pending, or sent by the tracer: their delivery is accounted for */
	struct user_regs_struct exit_regs; /* the leader's, held at the process's end */
	/* Waits reaped while its threads were held, for launch_poll to serve. */
	struct {
		pid_t tid;
		int status;
	} stash[64];
	int nstash;
	bool follow;	/* its descendants too */
	pid_t *procs;	/* the descendants followed, alive */
	int nprocs;
	/* Threads held at the fork that made a process not yet born (its
	 * parent's blocks are copied at its birth, as they were). */
	struct {
		pid_t parent, child;
	} *forks;
	int nforks;
	pid_t event;	/* the process a held state is about */
	int event_status; /* LAUNCH_GONE: its wait status */
};

enum launch_state {
	LAUNCH_RUNNING,
	LAUNCH_EXITED,
	LAUNCH_EXECED, /* it ran a new program and is held until launch_resume */
	LAUNCH_EXITING, /* it is ending, its memory whole: held until launch_let_exit */
	LAUNCH_BORN,	/* a descendant, held before its first instruction until launch_resume */
	LAUNCH_GONE,	/* a descendant has exited (event_status) */
};

/* Resolve the command as execvp would, fork, and hold the child at the gate. */
int launch_fork(char **argv, struct child *c, char *err, size_t errlen);
/* Let the child exec; fails with the reason if the command could not run. */
int launch_release(struct child *c, char *err, size_t errlen);
/* The child is not to run: killed and reaped. */
void launch_abort(struct child *c);
/* Reap or resume the child without blocking; c->wstatus is set once it has
 * exited. An exec (from any of its threads) holds it before the new
 * program's first instruction, so that the new program's allocator can be
 * probed first; so does a descendant's birth. A held state is about
 * c->event, which launch_resume or launch_let_exit lets go. */
enum launch_state launch_poll(struct child *c);
void launch_resume(struct child *c);
void launch_let_exit(struct child *c);
/* Every thread of process pid (the command or a descendant) stopped where
 * it is, with its registers (for a scan); launch_thaw lets each go as it was. */
void launch_freeze(struct child *c, pid_t pid, struct freeze *f);
void launch_thaw(struct child *c, struct freeze *f);
/* Whether the command got sig as well (the tracer's signal was sent to the
 * process group, or by the terminal): pending in it, or taken in the last
 * second and not matched yet. */
bool launch_got_too(struct child *c, int sig);
/* Send the command sig on the tracer's behalf. */
void launch_pass(struct child *c, int sig);

#endif
