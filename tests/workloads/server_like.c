/*
 * A server-like workload for the verdict: a cache of 512 entries of 4 KiB that
 * churns, and a burst of 8 MiB loaded and released every 3 seconds. Given a
 * start second (argv[2]), drip() then leaks 16 KiB every 31.25 ms: 0.5 MiB/s.
 * Runs for argv[1] seconds.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CACHE_ENTRIES 512
#define ENTRY_BYTES   4096
#define BURST_CHUNKS  128
#define CHUNK_BYTES   65536
#define TICK_US	      31250

static void *cache[CACHE_ENTRIES];
static void *burst[BURST_CHUNKS];
static void *volatile dripped;

void cache_put(unsigned slot)
{
	free(cache[slot % CACHE_ENTRIES]);
	cache[slot % CACHE_ENTRIES] = malloc(ENTRY_BYTES);
	memset(cache[slot % CACHE_ENTRIES], 1, 64);
}

void load_and_release(int load)
{
	for (int i = 0; i < BURST_CHUNKS; i++) {
		if (load) {
			burst[i] = malloc(CHUNK_BYTES);
		} else {
			free(burst[i]);
			burst[i] = NULL;
		}
	}
}

void drip(void)
{
	dripped = malloc(16384);
	memset(dripped, 1, 16384); /* resident, so that RSS shows the leak too */
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double duration = argc > 1 ? atof(argv[1]) : 40;
	double drip_from = argc > 2 ? atof(argv[2]) : -1;
	double start = now_s(), t;
	unsigned slot = 0;
	int loaded = 0;

	while ((t = now_s() - start) < duration) {
		for (int i = 0; i < 40; i++)
			cache_put(slot++ * 7919);
		if ((int)(t / 1.5) % 2 == 0 && (int)t % 3 == 0 && !loaded) {
			load_and_release(1);
			loaded = 1;
		} else if ((int)t % 3 == 1 && loaded) {
			load_and_release(0);
			loaded = 0;
		}
		if (drip_from >= 0 && t >= drip_from)
			drip();
		usleep(TICK_US);
	}
	return 0;
}
