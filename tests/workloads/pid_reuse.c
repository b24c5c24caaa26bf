/*
 * A pid taken again at once: a first child leaks 100 x 100 bytes in
 * leak_in_first and exits; the parent reaps it and, through ns_last_pid,
 * forks a second child under the same pid, which leaks 50 x 200 bytes in
 * leak_in_second (after exec'ing this program again, given "exec") and
 * lives 3 s. Writes "first PID second PID" (PIDs equal, or the reuse was
 * not had: retried 50 times). Needs root.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink[100];

void leak_in_first(void)
{
	for (int i = 0; i < 100; i++)
		sink[i] = malloc(100);
}

void leak_in_second(void)
{
	for (int i = 0; i < 50; i++)
		sink[i] = malloc(200);
}

static int second(void)
{
	leak_in_second();
	sleep(3);
	return 0;
}

/* Fork with the next pid after last (ns_last_pid), into a child that runs
 * second(), exec'ing first when asked; the child's pid. */
static pid_t fork_after(pid_t last, char **argv, int exec)
{
	FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
	pid_t pid;

	if (!f || fprintf(f, "%d", last) < 0 || fclose(f))
		return -1;
	pid = fork();
	if (pid == 0) {
		if (exec)
			execl("/proc/self/exe", argv[0], "second", (char *)NULL);
		_exit(second());
	}
	return pid;
}

int main(int argc, char **argv)
{
	int exec = argc > 1 && strcmp(argv[1], "exec") == 0;
	pid_t first, again = -1;

	if (argc > 1 && strcmp(argv[1], "second") == 0)
		return second();
	for (int tries = 0; tries < 50 && again != first; tries++) {
		if (again > 0) /* another process took the pid first: try again */
			kill(again, SIGKILL), waitpid(again, NULL, 0);
		first = fork();
		if (first == 0) {
			leak_in_first();
			_exit(0);
		}
		waitpid(first, NULL, 0);
		again = fork_after(first - 1, argv, exec);
	}
	printf("first %d second %d\n", first, again);
	fflush(stdout);
	waitpid(again, NULL, 0);
	return 0;
}
