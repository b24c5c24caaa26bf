/* Allocates, then execs argv[1] (with the rest of argv) from a second thread:
 * the new image's allocations are what counts, the old one's are dropped.
 * With -w first, waits for a line on stdin before the exec. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char **next_argv;

static void *exec_next(void *arg)
{
	(void)arg;
	execv(next_argv[0], next_argv);
	perror("execv");
	exit(127);
}

int main(int argc, char **argv)
{
	pthread_t t;

	char line[64];
	int wait = argc > 1 && strcmp(argv[1], "-w") == 0;

	if (argc < 2 + wait) {
		fprintf(stderr, "usage: exec_thread [-w] PROGRAM [ARG...]\n");
		return 2;
	}
	for (int i = 0; i < 10; i++)
		if (!malloc(1000)) /* the old image's leak: dropped at exec */
			return 1;
	if (wait && !fgets(line, sizeof(line), stdin))
		return 1;
	next_argv = argv + 1 + wait;
	pthread_create(&t, NULL, exec_next, NULL);
	pthread_join(t, NULL);
	return 1;
}
