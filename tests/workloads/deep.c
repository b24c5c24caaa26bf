/*
 * Leaks known exactly, for -O2 builds with and without frame pointers:
 * 3 x 100 B at the bottom of a 10-function chain (main -> level1 -> ... ->
 * level9 -> leak_deep), 2 x 333 B through a helper inlined into
 * leak_inlined, 1 x 4,000 B in a function that reaches malloc with no frame
 * of its own. With an argument N it also runs N malloc+free pairs at the
 * bottom of a chain as deep (main -> level11 -> ... -> level19 -> churn),
 * prints nanoseconds per pair and waits a second argument's seconds (the
 * benchmark reads the probes' run time then).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

volatile unsigned long sink;
void *kept[16];
int nkept;
static long pairs;

NOINLINE void leak_deep(int n)
{
	for (int i = 0; i < n; i++)
		kept[nkept++] = malloc(100);
	sink++;
}

/* Work after each call keeps the calls from becoming jumps. */
#define LEVEL(k, next)                                                                             \
	NOINLINE void level##k(int n)                                                              \
	{                                                                                          \
		next(n);                                                                           \
		sink += k;                                                                         \
	}
LEVEL(9, leak_deep)
LEVEL(8, level9)
LEVEL(7, level8)
LEVEL(6, level7)
LEVEL(5, level6)
LEVEL(4, level5)
LEVEL(3, level4)
LEVEL(2, level3)
LEVEL(1, level2)

static inline __attribute__((always_inline)) void *inlined_alloc(size_t n)
{
	void *p = malloc(n);

	memset(p, 7, n);
	return p;
}

NOINLINE void leak_inlined(void)
{
	kept[nkept++] = inlined_alloc(333);
	sink++;
}

NOINLINE void leak_frameless(void)
{
	kept[nkept++] = malloc(4000);
	sink++;
}

NOINLINE void churn(int n)
{
	for (long i = 0; i < pairs; i++) {
		void *volatile p = malloc(64 + (i & 255));

		free(p);
	}
	sink += n;
}

LEVEL(19, churn)
LEVEL(18, level19)
LEVEL(17, level18)
LEVEL(16, level17)
LEVEL(15, level16)
LEVEL(14, level15)
LEVEL(13, level14)
LEVEL(12, level13)
LEVEL(11, level12)

int main(int argc, char **argv)
{
	struct timespec a, b;

	level1(3);
	leak_inlined();
	leak_inlined();
	leak_frameless();
	if (argc < 2)
		return 0;
	pairs = atol(argv[1]);
	clock_gettime(CLOCK_MONOTONIC, &a);
	level11(1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / pairs);
	fflush(stdout);
	if (argc > 2)
		sleep((unsigned)atoi(argv[2]));
	return 0;
}
