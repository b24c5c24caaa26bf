/*
 * Holding a live process still for a scan: every thread seized and
 * interrupted (ptrace), its registers read, then each let go as it was: a
 * signal that arrived meanwhile is delivered, a stopped process stays
 * stopped. If the tracer dies holding them, the kernel lets them go.
 */
#ifndef FREEZE_H
#define FREEZE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/user.h>

struct frozen_thread {
	pid_t tid;
	int sig;     /* a signal that stopped it instead: delivered when it goes */
	bool listen; /* stopped by a signal (group stop): it stays so */
	bool kept;   /* its stop (an exec, an exit) is its tracer's to serve */
	struct user_regs_struct regs;
};

struct freeze {
	pid_t pid;
	struct frozen_thread *t;
	size_t n, cap;
};

/* Stop every thread of pid; on failure (traced by another: a debugger), the
 * reason, and every thread already held is let go. */
int freeze_process(pid_t pid, struct freeze *f, char *err, size_t errlen);
/* The held threads' registers, one after another: an array of f->n, to free. */
struct user_regs_struct *freeze_regs(const struct freeze *f);
/* Let every thread go. */
void freeze_release(struct freeze *f);

#endif
