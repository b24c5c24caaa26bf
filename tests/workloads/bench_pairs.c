/*
 * The benchmark's workload: N malloc+free pairs in each of THREADS threads
 * (default 1); prints the wall-clock nanoseconds per pair of one thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long n = 1000000;

static void *pairs(void *arg)
{
	void *volatile p;

	for (long i = 0; i < n; i++) {
		p = malloc(64 + (i & 255));
		free(p);
	}
	return arg;
}

int main(int argc, char **argv)
{
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	pthread_t tid[64];
	struct timespec a, b;

	if (argc > 1)
		n = atol(argv[1]);
	if (threads < 1 || threads > 64)
		threads = 1;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 1; i < threads; i++)
		pthread_create(&tid[i], NULL, pairs, NULL);
	pairs(NULL);
	for (int i = 1; i < threads; i++)
		pthread_join(tid[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
