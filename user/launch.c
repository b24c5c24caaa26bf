#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "symbolize.h"
#include "util.h"

extern char **environ;

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

/* In the child: only async-signal-safe calls, and no allocation. */
static void child_main(char **argv, const char *path, int gate, int report)
{
	sigset_t none;
	char byte;
	int e;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	while (read(gate, &byte, 1) < 0 && errno == EINTR)
		;
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

int launch_release(struct child *c, char *err, size_t errlen)
{
	ssize_t n;
	int e;

	/* Traced only to stop it at its exit, while its memory map still exists,
	 * and at its execs, from whichever thread (its threads are traced too). */
	ptrace(PTRACE_SEIZE, c->pid, 0,
	       PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | PTRACE_O_TRACECLONE);
	close(c->gate);
	while ((n = read(c->report, &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(c->report);
	if (n == (ssize_t)sizeof(e)) {
		snprintf(err, errlen, "cannot execute '%s': %s", c->path, strerror(e));
		waitpid(c->pid, NULL, 0);
		return -1;
	}
	return 0;
}

/* One thread's stop, each resumed as if untraced (a signal delivered, a
 * group stop kept); an exec of the child's after its first is held. */
static enum launch_state on_stop(struct child *c, pid_t tid, int st, struct symbolizer *sym)
{
	switch (st >> 16) {
	case PTRACE_EVENT_EXIT:
		if (tid == c->pid)
			symbolizer_refresh(sym);
		break;
	case PTRACE_EVENT_EXEC: /* reported as the leader, whichever thread exec'd */
		if (c->execs++ > 0)
			return LAUNCH_EXECED;
		break;
	case PTRACE_EVENT_CLONE:
		break;
	case PTRACE_EVENT_STOP:
		/* A new thread's first stop; else a group stop: stay stopped until SIGCONT. */
		if (WSTOPSIG(st) != SIGTRAP) {
			ptrace(PTRACE_LISTEN, tid, 0, 0);
			return LAUNCH_RUNNING;
		}
		break;
	default: /* a signal on its way: deliver it */
		ptrace(PTRACE_CONT, tid, 0, WSTOPSIG(st));
		return LAUNCH_RUNNING;
	}
	ptrace(PTRACE_CONT, tid, 0, 0);
	return LAUNCH_RUNNING;
}

enum launch_state launch_poll(struct child *c, struct symbolizer *sym, int *status)
{
	int st;
	pid_t tid;

	/* Every thread is traced, so that an exec from any of them stops. */
	while ((tid = waitpid(-1, &st, WNOHANG | __WALL)) > 0) {
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			if (tid != c->pid)
				continue; /* a thread */
			*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			return LAUNCH_EXITED;
		}
		if (WIFSTOPPED(st) && on_stop(c, tid, st, sym) == LAUNCH_EXECED)
			return LAUNCH_EXECED;
	}
	return LAUNCH_RUNNING;
}

void launch_resume(struct child *c)
{
	ptrace(PTRACE_CONT, c->pid, 0, 0);
}
