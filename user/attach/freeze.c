#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "freeze.h"
#include "util.h"

static bool held(const struct freeze *f, pid_t tid)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->t[i].tid == tid)
			return true;
	return false;
}


/* Seize one thread and wait for its stop: 1 held, 0 gone, -errno. */
static int hold(struct freeze *f, pid_t tid)
{
	struct frozen_thread t = {.tid = tid};
	int st;

	if (ptrace(PTRACE_SEIZE, tid, 0, 0))
		return errno == ESRCH ? 0 : -errno;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) && errno == ESRCH)
		return 0;
	while (waitpid(tid, &st, __WALL) < 0)
		if (errno != EINTR)
			return 0;
	if (!WIFSTOPPED(st))
		return 0; /* it exited */
	/* A signal's delivery stop came first: the signal is its to take. */
	if (st >> 16 != PTRACE_EVENT_STOP && WSTOPSIG(st) != SIGTRAP)
		t.sig = WSTOPSIG(st);
	if (ptrace(PTRACE_GETREGS, tid, 0, &t.regs)) {
		ptrace(PTRACE_DETACH, tid, 0, t.sig);
		return 0;
	}
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 16;
		f->t = xrealloc(f->t, f->cap * sizeof(*f->t));
	}
	f->t[f->n++] = t;
	return 1;
}

/* Each thread listed now that is not held yet: how many were added. */
static int hold_listed(struct freeze *f, char *err, size_t errlen)
{
	char path[64];
	struct dirent *d;
	int added = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", f->pid);
	if (!(dir = opendir(path))) {
		snprintf(err, errlen, "pid %d cannot be scanned: %s", f->pid, strerror(errno));
		return -1;
	}
	while ((d = readdir(dir))) {
		pid_t tid = (pid_t)atoi(d->d_name);
		int r;

		if (tid <= 0 || held(f, tid))
			continue;
		r = hold(f, tid);
		if (r < 0) {
			pid_t by = proc_status_int(f->pid, "TracerPid");

			if (by)
				snprintf(err, errlen,
					 "pid %d cannot be scanned: pid %d traces it (a "
					 "debugger); tracing goes on",
					 f->pid, by);
			else
				snprintf(err, errlen, "pid %d cannot be scanned: ptrace: %s",
					 f->pid, strerror(-r));
			closedir(dir);
			return -1;
		}
		added += r;
	}
	closedir(dir);
	return added;
}

int freeze_process(pid_t pid, struct freeze *f, char *err, size_t errlen)
{
	int added;

	memset(f, 0, sizeof(*f));
	f->pid = pid;
	/* A thread may start another before it is held: until none is new. */
	while ((added = hold_listed(f, err, errlen)) > 0)
		;
	if (added < 0) {
		freeze_release(f);
		return -1;
	}
	if (!f->n) {
		snprintf(err, errlen, "pid %d cannot be scanned: it has exited", pid);
		return -1;
	}
	return 0;
}

struct user_regs_struct *freeze_regs(const struct freeze *f)
{
	struct user_regs_struct *regs = xcalloc(f->n + 1, sizeof(*regs));

	for (size_t i = 0; i < f->n; i++)
		regs[i] = f->t[i].regs;
	return regs;
}

void freeze_release(struct freeze *f)
{
	for (size_t i = 0; i < f->n; i++)
		ptrace(PTRACE_DETACH, f->t[i].tid, 0, f->t[i].sig);
	free(f->t);
	f->t = NULL;
	f->n = f->cap = 0;
}
