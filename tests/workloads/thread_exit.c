/*
 * Threads that exit while the tracer is not looking: starts 8 threads,
 * writes "ready" once each runs (past its first stop, when traced), and on a
 * line from stdin lets them exit and joins them, then writes "joined".
 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static int go[2];
static pthread_barrier_t running;

static void *waiter(void *arg)
{
	char c;

	(void)arg;
	pthread_barrier_wait(&running);
	if (read(go[0], &c, 1) != 1)
		return NULL;
	return NULL;
}

int main(void)
{
	pthread_t t[8];
	char line[16];

	if (pipe(go) || pthread_barrier_init(&running, NULL, 9))
		return 1;
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, waiter, NULL);
	pthread_barrier_wait(&running);
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin) || write(go[1], "gogogogo", 8) != 8)
		return 1;
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	printf("joined\n");
	return 0;
}
