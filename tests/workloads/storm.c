/*
 * Four threads in an allocation storm (malloc and free, constantly) while
 * the main thread's memory grows, holds, and grows again on SIGUSR2: a
 * watched process probed, unprobed and probed again mid-storm. From SIGUSR2
 * on the storm runs a frame deeper than before, as the leaks do: calls a
 * stale "call in flight" from the first probing would take for nested ones
 * (the bug this exercises). On SIGUSR1
 * each storm thread leaks 600 blocks of 48 bytes in leak_after_reprobe()
 * (2,400 in all) and the process exits.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 4
#define LEAKS	600

static volatile sig_atomic_t grow = 1, deeper, finish;
static void *volatile sink;

void leak_after_reprobe(void)
{
	for (int i = 0; i < LEAKS; i++)
		sink = malloc(48);
}

/* Blocks past the mmap threshold: each call spends microseconds inside the
 * allocator, where a probe may come off. */
void churn_deeper(void)
{
	free(malloc(1 << 18));
}

static void *storm(void *arg)
{
	(void)arg;
	while (!finish) {
		if (deeper) {
			churn_deeper();
		} else {
			void *p = malloc(1 << 18);

			free(p);
		}
	}
	leak_after_reprobe();
	return NULL;
}

void grow_heap(void)
{
	void *p = malloc(1 << 18);

	memset(p, 1, 1 << 18);
}

static void on_signal(int sig)
{
	if (sig == SIGUSR2)
		grow = deeper = 1;
	else
		finish = 1;
}

int main(int argc, char **argv)
{
	double fill_s = argc > 1 ? atof(argv[1]) : 12;
	pthread_t t[THREADS];
	long ticks = 0;

	signal(SIGUSR1, on_signal);
	signal(SIGUSR2, on_signal);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, storm, NULL);
	while (!finish) {
		if (grow)
			grow_heap(); /* 2.5 MiB/s */
		if (++ticks == (long)(fill_s * 10))
			grow = 0;
		usleep(100000);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	return 0;
}
