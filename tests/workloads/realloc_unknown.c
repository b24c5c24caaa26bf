/*
 * For -p: blocks made before the tracer attached are realloc'd by one thread
 * (each moves, freeing an address the tracer never saw allocated) while a
 * second thread mallocs 100 bytes and keeps every block in keep_blocks. One
 * arena, so that the second thread is handed the addresses the first gives
 * up. Writes "ready", waits for a line, races, writes "kept N", waits for
 * the end of its input.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define OLD 200000

static void *old[OLD];
static volatile int racing = 1;
static long kept;

void *keep_blocks(void)
{
	void **list = NULL, **p;

	while (racing) {
		if (!(p = malloc(100)))
			abort();
		*p = list; /* every block stays reachable */
		list = p;
		kept++;
	}
	return list;
}

static void *keeper(void *arg)
{
	(void)arg;
	return keep_blocks();
}

static void wait_line(void)
{
	char c;

	while (read(0, &c, 1) == 1 && c != '\n')
		;
}

int main(void)
{
	pthread_t t;

	mallopt(M_ARENA_MAX, 1);
	for (int i = 0; i < OLD; i++)
		old[i] = malloc(100);
	printf("ready\n");
	fflush(stdout);
	wait_line();
	pthread_create(&t, NULL, keeper, NULL);
	for (int i = 0; i < OLD; i++)
		free(realloc(old[i], 2000));
	racing = 0;
	pthread_join(t, NULL);
	printf("kept %ld\n", kept);
	fflush(stdout);
	wait_line();
	return 0;
}
