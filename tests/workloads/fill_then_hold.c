/*
 * A cache that fills and then holds: 1 MiB a second of live, written blocks
 * in fill_cache for argv[1] seconds, then only churn (a block freed and
 * allocated again) until argv[2] seconds. Not a leak once it holds.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 65536
#define SLOTS 4096

static void *cache[SLOTS];

void fill_cache(int slot)
{
	cache[slot] = malloc(BLOCK);
	memset(cache[slot], 1, BLOCK);
}

void churn(int slot)
{
	free(cache[slot]);
	fill_cache(slot);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double fill = argc > 1 ? atof(argv[1]) : 12, total = argc > 2 ? atof(argv[2]) : 60;
	double start = now_s(), t;
	int filled = 0;

	while ((t = now_s() - start) < total) {
		if (t < fill && filled < SLOTS)
			fill_cache(filled++);
		else if (filled)
			churn(rand() % filled);
		usleep(62500);
	}
	return 0;
}
