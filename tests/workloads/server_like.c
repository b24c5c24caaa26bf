/*
 * A server-like workload for the verdict: a cache of 512 entries of 4 KiB that
 * churns, and a burst of 8 MiB loaded and released every 3 seconds. Given a
 * start second (argv[2]), drip() then leaks 16 KiB every 31.25 ms: 0.5 MiB/s.
 * Runs for argv[1] seconds. With "big" (argv[3]): a 16 MiB cache, 16 MiB
 * bursts every 2 seconds (held 1 s), and a 640 KiB/s drip (20 KiB a tick).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CACHE_ENTRIES 4096 /* at most */
#define ENTRY_BYTES   4096
#define BURST_CHUNKS  256 /* at most */
#define CHUNK_BYTES   65536
#define TICK_US	      31250

static unsigned cache_entries = 512, burst_chunks = 128, drip_bytes = 16384;
static void *cache[CACHE_ENTRIES];
static void *burst[BURST_CHUNKS];
static void *volatile dripped;

void cache_put(unsigned slot)
{
	slot %= cache_entries;
	free(cache[slot]);
	cache[slot] = malloc(ENTRY_BYTES);
	memset(cache[slot], 1, 64);
}

void load_and_release(int load)
{
	for (unsigned i = 0; i < burst_chunks; i++) {
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
	dripped = malloc(drip_bytes);
	memset(dripped, 1, drip_bytes); /* resident, so that RSS shows the leak too */
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
	int loaded = 0, big = argc > 3 && strcmp(argv[3], "big") == 0;
	int period = big ? 2 : 3;

	if (big) {
		cache_entries = CACHE_ENTRIES;
		burst_chunks = BURST_CHUNKS;
		drip_bytes = 20480;
	}
	while ((t = now_s() - start) < duration) {
		for (int i = 0; i < 40; i++)
			cache_put(slot++ * 7919);
		if ((int)t % period == 0 && !loaded) {
			load_and_release(1);
			loaded = 1;
		} else if ((int)t % period == 1 && loaded) {
			load_and_release(0);
			loaded = 0;
		}
		if (drip_from >= 0 && t >= drip_from)
			drip();
		usleep(TICK_US);
	}
	return 0;
}
