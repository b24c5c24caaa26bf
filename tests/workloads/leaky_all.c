/*
 * One leak per allocation function, with known counts and sizes, among tens
 * of thousands of freed allocations of every kind. No stdio: its buffers would
 * be allocations of their own. Leaks (function: blocks x bytes):
 *   leak_malloc 3 x 100, leak_calloc 4 x 112, leak_realloc 5 x 200 + 1 x 300,
 *   leak_reallocarray 2 x 240, leak_posix_memalign 3 x 256,
 *   leak_aligned_alloc 2 x 512, leak_memalign 2 x 384, leak_valloc 1 x 1000,
 *   leak_pvalloc 1 x 4096: 24 blocks, 10184 bytes.
 * Built with -DNO_PVALLOC (valgrind 3.19 aborts on pvalloc) it leaves the
 * pvalloc calls out: 23 blocks, 6088 bytes.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#define CHURN 5000

static void *volatile sink[16];

static void keep(int i, void *p)
{
	sink[i % 16] = p;
}

void leak_malloc(void)
{
	for (int i = 0; i < 3; i++)
		keep(i, malloc(100));
}

void leak_calloc(void)
{
	for (int i = 0; i < 4; i++)
		keep(i, calloc(7, 16));
}

void leak_realloc(void)
{
	for (int i = 0; i < 5; i++)
		keep(i, realloc(malloc(10), 200));
	keep(5, realloc(NULL, 300));
}

void leak_reallocarray(void)
{
	for (int i = 0; i < 2; i++)
		keep(i, reallocarray(NULL, 10, 24));
}

void leak_posix_memalign(void)
{
	for (int i = 0; i < 3; i++) {
		void *p;

		if (posix_memalign(&p, 64, 256) == 0)
			keep(i, p);
	}
}

void leak_aligned_alloc(void)
{
	for (int i = 0; i < 2; i++)
		keep(i, aligned_alloc(128, 512));
}

void leak_memalign(void)
{
	for (int i = 0; i < 2; i++)
		keep(i, memalign(32, 384));
}

void leak_valloc(void)
{
	keep(0, valloc(1000));
}

void leak_pvalloc(void)
{
#ifndef NO_PVALLOC
	keep(0, pvalloc(4096));
#endif
}

static void churn(void)
{
	for (int i = 0; i < CHURN; i++) {
		void *p = malloc(16 + i % 512), *q, *r;

		free(calloc(1 + i % 8, 32));
		q = realloc(p, 1024 + i % 64); /* moves or grows */
		r = realloc(q, SIZE_MAX / 2);  /* fails: q stays */
		if (!r)
			r = q;
		free(realloc(r, 8));
		free(reallocarray(NULL, 3, 40));
		if (posix_memalign(&p, 32, 96) == 0)
			free(p);
		free(aligned_alloc(64, 128));
		free(memalign(16, 48));
		free(valloc(64));
#ifndef NO_PVALLOC
		free(pvalloc(100));
#endif
		free(NULL);
		/* glibc frees p and returns NULL; others (mimalloc) a new block */
		free(realloc(malloc(32), 0));
		if (calloc(SIZE_MAX / 8, i % 16 + 16)) /* overflows: fails */
			return;
	}
}

int main(void)
{
	churn();
	leak_malloc();
	leak_calloc();
	leak_realloc();
	leak_reallocarray();
	leak_posix_memalign();
	leak_aligned_alloc();
	leak_memalign();
	leak_valloc();
	leak_pvalloc();
	return 0;
}
