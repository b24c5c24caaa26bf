#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "util.h"

extern char **environ;

/* The leader stops at its exit too; its other threads only at exec.
 * Following, the processes they start are traced from birth. */
#define THREAD_OPTIONS (PTRACE_O_TRACEEXEC | PTRACE_O_TRACECLONE)
#define LEADER_OPTIONS (THREAD_OPTIONS | PTRACE_O_TRACEEXIT)
#define FOLLOW_OPTIONS (PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK)

static int options(const struct child *c, bool leader)
{
	return (leader ? LEADER_OPTIONS : THREAD_OPTIONS) | (c->follow ? FOLLOW_OPTIONS : 0);
}

static int resolve_command(const char *name, char *out, char *err, size_t errlen)
{
	const char *path = getenv("PATH");
	char *copy, *save, *dir;
	int found = 0;

	if (strchr(name, '/')) {
		snprintf(out, PATH_MAX, "%s", name);
		if (access(out, X_OK) == 0)
			return 0;
		snprintf(err, errlen, "cannot execute '%s': %s", name, strerror(errno));
		return -1;
	}
	copy = xstrdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		snprintf(out, PATH_MAX, "%s/%s", dir, name);
		found = access(out, X_OK) == 0;
	}
	free(copy);
	if (found)
		return 0;
	snprintf(err, errlen, "cannot execute '%s': command not found in PATH", name);
	return -1;
}

/* In the child: only async-signal-safe calls, and no allocation. It runs
 * only once the tracer says so: if the tracer is gone first, it never does. */
static void child_main(char **argv, const char *path, int gate, int report)
{
	ssize_t n;
	char byte;
	int e;

	while ((n = read(gate, &byte, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		_exit(127);
	close(gate);
	execve(path, argv, environ);
	e = errno;
	if (write(report, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

int launch_fork(char **argv, struct child *c, char *err, size_t errlen)
{
	int gate[2], report[2];

	memset(c, 0, sizeof(*c));
	if (resolve_command(argv[0], c->path, err, errlen))
		return -1;
	if (pipe2(gate, O_CLOEXEC) || pipe2(report, O_CLOEXEC)) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	c->pid = fork();
	if (c->pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (c->pid == 0) {
		close(gate[1]);
		close(report[0]);
		child_main(argv, c->path, gate[0], report[1]);
	}
	close(gate[0]);
	close(report[1]);
	c->gate = gate[1];
	c->report = report[0];
	return 0;
}

void launch_abort(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, __WALL) < 0 && errno == EINTR)
			;
		c->pid = 0;
	}
	if (c->gate >= 0)
		close(c->gate);
	if (c->report >= 0)
		close(c->report);
	c->gate = c->report = -1;
}

int launch_release(struct child *c, char *err, size_t errlen)
{
	ssize_t n;
	int e;

	/* Traced only to stop it at its leader's exit, while its memory map
	 * still exists, and at its execs, from whichever thread (its threads
	 * are traced too, each without the exit stop: on_stop). */
	ptrace(PTRACE_SEIZE, c->pid, 0, options(c, true));
	if (write(c->gate, "", 1) != 1) {
		snprintf(err, errlen, "cannot start '%s': %s", c->path, strerror(errno));
		return -1;
	}
	close(c->gate);
	while ((n = read(c->report, &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(c->report);
	c->gate = c->report = -1;
	if (n == (ssize_t)sizeof(e)) {
		snprintf(err, errlen, "cannot execute '%s': %s", c->path, strerror(e));
		waitpid(c->pid, NULL, __WALL);
		c->pid = 0;
		return -1;
	}
	return 0;
}

/* Its index among the descendants followed, or -1. */
static int followed(const struct child *c, pid_t pid)
{
	for (int i = 0; i < c->nprocs; i++)
		if (c->procs[i] == pid)
			return i;
	return -1;
}

static bool in_command(const struct child *c, pid_t tid)
{
	return tid == c->pid || proc_status_int(tid, "Tgid") == c->pid;
}

/* A task's first stop: a thread of a traced process stays traced for its
 * execs, but its exit does not stop (only a leader's, for the final map).
 * Another process (a fork, a vfork, a clone of a process) is a descendant:
 * followed, it is held for its probes (BORN); otherwise let go. */
static enum launch_state on_new_task(struct child *c, pid_t tid)
{
	pid_t tgid = proc_status_int(tid, "Tgid");

	if (tgid == tid && tid != c->pid) {
		if (!c->follow) {
			ptrace(PTRACE_DETACH, tid, 0, 0);
			return LAUNCH_RUNNING;
		}
		ptrace(PTRACE_SETOPTIONS, tid, 0, options(c, true));
		c->procs = xrealloc(c->procs, (size_t)(c->nprocs + 1) * sizeof(*c->procs));
		c->procs[c->nprocs++] = tid;
		c->event = tid;
		return LAUNCH_BORN;
	}
	if (tid != c->pid)
		ptrace(PTRACE_SETOPTIONS, tid, 0, options(c, false));
	ptrace(PTRACE_CONT, tid, 0, 0);
	return LAUNCH_RUNNING;
}

/* A signal delivered to the command: noted, so that the same signal sent to
 * the tracer by the same hand (the process group) is not passed on again. */
static void on_delivery(struct child *c, int sig)
{
	if (sig <= 0 || sig >= NSIG)
		return;
	if (c->claimed[sig] > 0) {
		c->claimed[sig]--;
		return;
	}
	c->unmatched[sig]++;
	c->delivered_at[sig] = monotonic_s();
}

/* One thread's stop, each resumed as if untraced (a signal delivered, a
 * group stop kept); an exec of the child's after its first, or of a
 * descendant's, is held, and so is a process's end. */
static enum launch_state on_stop(struct child *c, pid_t tid, int st)
{
	switch (st >> 16) {
	case PTRACE_EVENT_EXIT:
		if (tid != c->pid && followed(c, tid) < 0)
			break;
		/* Its process ends (not only its leader: exit_group, or a
		 * signal's end): held for a scan of its memory. */
		if (!ptrace(PTRACE_GETREGS, tid, 0, &c->exit_regs) &&
		    c->exit_regs.orig_rax != SYS_exit) {
			c->event = tid;
			return LAUNCH_EXITING;
		}
		break;
	case PTRACE_EVENT_EXEC: /* reported as the leader, whichever thread exec'd */
		ptrace(PTRACE_SETOPTIONS, tid, 0, options(c, true)); /* a thread's, it may be */
		c->event = tid;
		if (tid != c->pid || c->execs++ > 0)
			return LAUNCH_EXECED;
		break;
	case PTRACE_EVENT_FORK:
	case PTRACE_EVENT_VFORK:
	case PTRACE_EVENT_CLONE: {
		unsigned long born = 0;

		/* The new task stops on its own. A new process not born yet:
		 * its parent waits for it (launch_resume). */
		if (!c->follow || ptrace(PTRACE_GETEVENTMSG, tid, 0, &born) || followed(c, born) >= 0 ||
		    proc_status_int((pid_t)born, "Tgid") != (pid_t)born)
			break;
		c->forks = xrealloc(c->forks, (size_t)(c->nforks + 1) * sizeof(*c->forks));
		c->forks[c->nforks].parent = tid;
		c->forks[c->nforks++].child = (pid_t)born;
		return LAUNCH_RUNNING;
	}
	case PTRACE_EVENT_STOP:
		/* A group stop: stay stopped until SIGCONT. */
		if (WSTOPSIG(st) != SIGTRAP) {
			ptrace(PTRACE_LISTEN, tid, 0, 0);
			return LAUNCH_RUNNING;
		}
		return on_new_task(c, tid);
	default: /* a signal on its way: deliver it */
		if (in_command(c, tid))
			on_delivery(c, WSTOPSIG(st));
		ptrace(PTRACE_CONT, tid, 0, WSTOPSIG(st));
		return LAUNCH_RUNNING;
	}
	ptrace(PTRACE_CONT, tid, 0, 0);
	return LAUNCH_RUNNING;
}

/* One reaped wait: RUNNING if it needs no more from the caller. */
static enum launch_state on_wait(struct child *c, pid_t tid, int st)
{
	int i;

	if (WIFEXITED(st) || WIFSIGNALED(st)) {
		if (tid == c->pid) {
			c->wstatus = st;
			return LAUNCH_EXITED;
		}
		for (int k = 0; k < c->nforks; k++)
			if (c->forks[k].child == tid) { /* gone before its birth was seen */
				ptrace(PTRACE_CONT, c->forks[k].parent, 0, 0);
				c->forks[k--] = c->forks[--c->nforks];
			}
		if ((i = followed(c, tid)) < 0)
			return LAUNCH_RUNNING; /* a thread */
		c->procs[i] = c->procs[--c->nprocs];
		c->event = tid;
		c->event_status = st;
		return LAUNCH_GONE;
	}
	return WIFSTOPPED(st) ? on_stop(c, tid, st) : LAUNCH_RUNNING;
}

enum launch_state launch_poll(struct child *c)
{
	enum launch_state s;
	int st;
	pid_t tid;

	while (c->nstash > 0) { /* reaped while its threads were held */
		tid = c->stash[0].tid;
		st = c->stash[0].status;
		memmove(&c->stash[0], &c->stash[1], --c->nstash * sizeof(c->stash[0]));
		if ((s = on_wait(c, tid, st)) != LAUNCH_RUNNING)
			return s;
	}
	/* Every thread is traced, so that an exec from any of them stops. */
	while ((tid = waitpid(-1, &st, WNOHANG | __WALL)) > 0)
		if ((s = on_wait(c, tid, st)) != LAUNCH_RUNNING)
			return s;
	return LAUNCH_RUNNING;
}

static void stash(struct child *c, pid_t tid, int st)
{
	if (c->nstash < (int)(sizeof(c->stash) / sizeof(c->stash[0]))) {
		c->stash[c->nstash].tid = tid;
		c->stash[c->nstash++].status = st;
	}
}

/* Stop one of the command's threads: false if it is gone. What stopped it
 * first (a signal, an exec) is kept for its release or for launch_poll. */
static bool interrupt(struct child *c, pid_t tid, struct frozen_thread *t)
{
	int st;

	for (int i = 0; i < c->nforks; i++)
		if (c->forks[i].parent == tid) { /* held already, until its child's birth */
			*t = (struct frozen_thread){.tid = tid, .kept = true};
			if (ptrace(PTRACE_GETREGS, tid, 0, &t->regs))
				memset(&t->regs, 0, sizeof(t->regs));
			return true;
		}
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0))
		return false;
	while (waitpid(tid, &st, __WALL) < 0)
		if (errno != EINTR)
			return false;
	if (!WIFSTOPPED(st)) {
		stash(c, tid, st);
		return false;
	}
	*t = (struct frozen_thread){.tid = tid};
	if (st >> 16 == PTRACE_EVENT_STOP)
		t->listen = WSTOPSIG(st) != SIGTRAP;
	else if (st >> 16)
		t->kept = true, stash(c, tid, st);
	else
		t->sig = WSTOPSIG(st);
	if (ptrace(PTRACE_GETREGS, tid, 0, &t->regs))
		memset(&t->regs, 0, sizeof(t->regs));
	return true;
}

static bool frozen(const struct freeze *f, pid_t tid)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->t[i].tid == tid)
			return true;
	return false;
}

void launch_freeze(struct child *c, pid_t pid, struct freeze *f)
{
	bool more = true;
	char path[64];

	memset(f, 0, sizeof(*f));
	f->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	while (more) { /* until no thread is new: one may start another */
		struct dirent *d;
		DIR *dir = opendir(path);

		more = false;
		while (dir && (d = readdir(dir))) {
			pid_t tid = (pid_t)atoi(d->d_name);
			struct frozen_thread t;

			if (tid <= 0 || frozen(f, tid) || !interrupt(c, tid, &t))
				continue;
			if (f->n == f->cap) {
				f->cap = f->cap ? 2 * f->cap : 16;
				f->t = xrealloc(f->t, f->cap * sizeof(*f->t));
			}
			f->t[f->n++] = t;
			more = true;
		}
		if (dir)
			closedir(dir);
	}
}

void launch_thaw(struct child *c, struct freeze *f)
{
	for (size_t i = 0; i < f->n; i++) {
		const struct frozen_thread *t = &f->t[i];

		if (t->kept)
			continue;
		if (t->listen) {
			ptrace(PTRACE_LISTEN, t->tid, 0, 0);
			continue;
		}
		if (f->pid == c->pid)
			on_delivery(c, t->sig);
		ptrace(PTRACE_CONT, t->tid, 0, t->sig);
	}
	free(f->t);
	f->t = NULL;
	f->n = f->cap = 0;
}

void launch_let_exit(struct child *c)
{
	ptrace(PTRACE_CONT, c->event, 0, 0);
}

void launch_resume(struct child *c)
{
	ptrace(PTRACE_CONT, c->event, 0, 0);
	for (int i = 0; i < c->nforks; i++)
		if (c->forks[i].child == c->event) {
			ptrace(PTRACE_CONT, c->forks[i].parent, 0, 0);
			c->forks[i--] = c->forks[--c->nforks];
		}
}

/* Whether sig waits in the process's shared or its leader's pending set. */
static bool pending(pid_t pid, int sig)
{
	unsigned long long mask, any = 0;
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (!(f = fopen(path, "re")))
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "ShdPnd: %llx", &mask) == 1 || sscanf(line, "SigPnd: %llx", &mask) == 1)
			any |= mask;
	fclose(f);
	return any & (1ULL << (sig - 1));
}

bool launch_got_too(struct child *c, int sig)
{
	if (sig <= 0 || sig >= NSIG)
		return false;
	if (c->unmatched[sig] > 0 && monotonic_s() - c->delivered_at[sig] < 1.0) {
		c->unmatched[sig]--;
		return true;
	}
	c->unmatched[sig] = 0;
	if (!pending(c->pid, sig))
		return false;
	c->claimed[sig]++;
	return true;
}

void launch_pass(struct child *c, int sig)
{
	if (sig > 0 && sig < NSIG && kill(c->pid, sig) == 0)
		c->claimed[sig]++; /* its delivery is this one's, not another's */
}
