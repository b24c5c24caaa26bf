/*
 * Two levels of inlining around malloc: inner() is inlined into middle(),
 * middle() into outer(), which main calls 3 times (-O2, functions always
 * inlined, outer kept out of line). It then waits for the end of its input.
 * Leaks: inner 3 x 72 = 216 bytes, each block's stack inner < middle < outer < main.
 */
#include <stdio.h>
#include <stdlib.h>

static void *volatile kept[3];

static inline __attribute__((always_inline)) void *inner(int i)
{
	return malloc(72 + i * 0); /* inner's call of malloc */
}

static inline __attribute__((always_inline)) void *middle(int i)
{
	void *p = inner(i); /* middle's call of inner */

	kept[i] = p;
	return p;
}

__attribute__((noinline)) void outer(int i)
{
	void *p = middle(i); /* outer's call of middle */

	asm volatile("" : : "r"(p) : "memory");
}

int main(void)
{
	for (int i = 0; i < 3; i++)
		outer(i);
	puts("kept 3");
	fflush(stdout);
	while (getchar() != EOF)
		;
	return 0;
}
