/*
 * One allocation site reached from two callers at the same stack depth:
 * each allocation returns to the same place with the same stack pointer and
 * frame pointer, and only the callers' return addresses on the stack differ.
 * from_a() runs every time, from_b() every other time, so each stack both
 * follows itself and follows the other.
 * Leaks: site <- from_a 3,000 x 24 = 72,000 bytes; site <- from_b 1,500 x 40
 * = 60,000 bytes.
 */
#include <stdlib.h>

#define N 3000

static void *volatile kept_a[N], *volatile kept_b[N / 2];

__attribute__((noinline)) void *site(size_t n)
{
	void *p = malloc(n);

	asm volatile("" : : "r"(p) : "memory"); /* not a tail call */
	return p;
}

__attribute__((noinline)) void *from_a(void)
{
	void *p = site(24);

	asm volatile("" : : "r"(p) : "memory");
	return p;
}

__attribute__((noinline)) void *from_b(void)
{
	void *p = site(40);

	asm volatile("" : : "r"(p) : "memory");
	return p;
}

int main(void)
{
	for (int i = 0; i < N; i++) {
		kept_a[i] = from_a();
		if (i & 1)
			kept_b[i / 2] = from_b();
	}
	return 0;
}
