/*
 * Stacks in threads that grow their heaps: four threads, built -O2 without
 * frame pointers, each keep 250 blocks of 40 bytes from thread_leak(),
 * called by worker(), while they churn blocks of 64 KiB to 256 KiB (each
 * thread's arena grows and shrinks: mprotect and madvise take the memory
 * map's lock as writers). The threads start together, at a barrier.
 * Leaks: thread_leak 4 x 250 x 40 = 40,000 bytes in 1,000 blocks.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4
#define KEPT	250

static pthread_barrier_t start;
static void *volatile kept[THREADS][KEPT];

__attribute__((noinline)) void *thread_leak(void)
{
	void *p = malloc(40);

	asm volatile("" : : "r"(p) : "memory"); /* not a tail call */
	return p;
}

__attribute__((noinline)) static void churn(int i)
{
	void *volatile big[8];

	for (int j = 0; j < 8; j++)
		big[j] = malloc(65536 << ((i + j) & 2));
	for (int j = 0; j < 8; j++)
		free(big[j]);
}

__attribute__((noinline)) void *worker(void *arg)
{
	long t = (long)arg;

	pthread_barrier_wait(&start);
	for (int i = 0; i < KEPT; i++) {
		kept[t][i] = thread_leak();
		churn(i);
	}
	return NULL;
}

int main(void)
{
	pthread_t tid[THREADS];

	pthread_barrier_init(&start, NULL, THREADS);
	for (long t = 0; t < THREADS; t++)
		pthread_create(&tid[t], NULL, worker, (void *)t);
	for (int t = 0; t < THREADS; t++)
		pthread_join(tid[t], NULL);
	puts("done");
	return 0;
}
