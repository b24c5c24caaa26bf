/*
 * A short-lived process for system-wide tests: leaks 7 x 512 bytes in
 * leak_before_exit, frees 100 other blocks, and exits.
 */
#include <stdlib.h>

static void *volatile sink[8];

void leak_before_exit(void)
{
	for (int i = 0; i < 7; i++)
		sink[i] = malloc(512);
}

int main(void)
{
	for (int i = 0; i < 100; i++)
		free(malloc(64 + i));
	leak_before_exit();
	return 0;
}
