/*
 * A child made by clone() with no exit signal (not a thread, not a fork):
 * it execs /bin/true, and the parent waits for it with __WALL. Writes the
 * child's exit status.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int child(void *arg)
{
	(void)arg;
	execl("/bin/true", "true", (char *)NULL);
	_exit(127);
}

int main(void)
{
	char *stack = malloc(1 << 16);
	int status = -1;
	pid_t pid = clone(child, stack + (1 << 16), 0, NULL);

	if (pid < 0 || waitpid(pid, &status, __WALL) != pid)
		return 1;
	printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	free(stack);
	return 0;
}
