/*
 * A command that shares stdout with the tracer's reports: keeps blocks at 12
 * distinct stacks (so that a report is long), then writes numbered lines of
 * 100 bytes, each with one write(2), without pause for SECONDS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink[12];

void keep(int depth, int i)
{
	if (depth)
		keep(depth - 1, i);
	else
		sink[i] = malloc(64);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2;
	struct timespec start, now;
	char line[128];
	long n = 0;

	for (int i = 0; i < 12; i++)
		keep(i, i);
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		int len = snprintf(line, sizeof(line), "line %09ld %s\n", n++,
				   "................................................................"
				   "......................");

		if (write(1, line, (size_t)len) != len)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - start.tv_sec + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
	return 0;
}
