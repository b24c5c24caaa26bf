/*
 * A churning server for pages mode: a 16 MiB cache of 64 KiB entries filled
 * in its first second and then churned (4 entries replaced a tick), 16 MiB
 * bursts every 2 seconds (4 MiB buffers mapped, written, held 1 s and
 * unmapped, as a server's big buffers are: glibc's malloc would put them in
 * its heap after the first, where freed they leave holes the drip fills,
 * and the next burst would bring in the pages), and from
 * second argv[2] on a drip of 16 KiB blocks, each written whole, one every
 * 25 ms (640 KiB/s). Runs argv[1] seconds, then prints the blocks it dripped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#define CACHE_ENTRIES 256
#define ENTRY_BYTES   65536
#define BURST_BLOCKS  4
#define BURST_BYTES   (4 << 20)
#define DRIP_BYTES    16384
#define TICK_US	      25000

static void *cache[CACHE_ENTRIES];
static void *burst[BURST_BLOCKS];
static void *volatile dripped;

void cache_put(unsigned slot)
{
	slot %= CACHE_ENTRIES;
	free(cache[slot]);
	cache[slot] = malloc(ENTRY_BYTES);
	memset(cache[slot], 1, ENTRY_BYTES);
}

void burst_load(int load)
{
	for (int i = 0; i < BURST_BLOCKS; i++) {
		if (load) {
			burst[i] = mmap(NULL, BURST_BYTES, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (burst[i] == MAP_FAILED)
				exit(1);
			memset(burst[i], 2, BURST_BYTES);
		} else {
			munmap(burst[i], BURST_BYTES);
			burst[i] = NULL;
		}
	}
}

void drip(void)
{
	dripped = malloc(DRIP_BYTES);
	memset(dripped, 3, DRIP_BYTES);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double duration = argc > 1 ? atof(argv[1]) : 20;
	double drip_from = argc > 2 ? atof(argv[2]) : -1;
	double start = now_s(), t;
	unsigned slot = 0, drips = 0;
	int loaded = 0;

	for (unsigned i = 0; i < CACHE_ENTRIES; i++)
		cache_put(i);
	while ((t = now_s() - start) < duration) {
		for (int i = 0; i < 4; i++)
			cache_put(slot++ * 7919);
		if ((int)t % 2 == 0 && !loaded) {
			burst_load(1);
			loaded = 1;
		} else if ((int)t % 2 == 1 && loaded) {
			burst_load(0);
			loaded = 0;
		}
		if (drip_from >= 0 && t >= drip_from) {
			drip();
			drips++;
		}
		usleep(TICK_US);
	}
	printf("dripped %u blocks of %d bytes\n", drips, DRIP_BYTES);
	return 0;
}
