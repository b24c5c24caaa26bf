/*
 * A pre-forking server: the parent starts 4 workers and waits for them.
 * Each worker serves requests for a few seconds (a request's buffers are
 * allocated and freed); worker 2's handle_request forgets to free 1 in 10
 * of its 512-byte headers, and drops the pointer. Every worker prints
 * "worker N pid P" first.
 * Argument (tests): the requests each worker serves (default 6000, a pause
 * of 20 ms every 10: 12 s).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void handle_request(int worker, int n)
{
	char *body = malloc(2048), *header = malloc(512);

	memset(body, 'b', 2048);
	memset(header, 'h', 512);
	free(body);
	if (worker == 2 && n % 10 == 0)
		return; /* the bug: the header is lost */
	free(header);
}

static void serve(int worker, int requests)
{
	printf("worker %d pid %d\n", worker, getpid());
	fflush(stdout);
	for (int n = 1; n <= requests; n++) {
		handle_request(worker, n);
		if (n % 10 == 0)
			usleep(20000);
	}
}

int main(int argc, char **argv)
{
	int requests = argc > 1 ? atoi(argv[1]) : 6000;

	for (int w = 1; w <= 4; w++) {
		pid_t pid = fork();

		if (pid < 0)
			return 1;
		if (pid == 0) {
			serve(w, requests);
			exit(0);
		}
	}
	while (wait(NULL) > 0)
		;
	return 0;
}
