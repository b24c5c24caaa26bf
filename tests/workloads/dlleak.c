/* A library that leaks 3 x 777 B when asked: dlopen_leak loads it, calls
 * it and closes it before any report. */
#include <stdlib.h>

void *dl_kept[3];
volatile int dl_sink;

__attribute__((noinline)) void dl_leak(void)
{
	for (int i = 0; i < 3; i++)
		dl_kept[i] = malloc(777);
	dl_sink++;
}
