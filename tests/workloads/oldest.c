/*
 * The oldest live block of one stack as blocks come and go: hold() takes a
 * block of 100, 200, 400 and 800 bytes (A, B, C, D), one a second; then A is
 * freed, a second later C, a second later B, and D is leaked. The oldest of
 * hold's stack is A, then B (A freed), still B (C was not the oldest), then
 * D. Each step is a second apart.
 */
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) void *hold(size_t size)
{
	return malloc(size);
}

int main(void)
{
	void *block[4];

	for (int i = 0; i < 4; i++) {
		block[i] = hold((size_t)100 << i);
		sleep(1);
	}
	free(block[0]);
	sleep(1);
	free(block[2]);
	sleep(1);
	free(block[1]);
	sleep(1);
	return block[3] == NULL; /* D is never freed */
}
