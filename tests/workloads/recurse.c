/* One 64-byte leak at the bottom of 100 nested calls: a stack deeper than
 * the 64 frames a report keeps. */
#include <stdlib.h>

void *kept;

__attribute__((noinline)) int down(int n)
{
	if (n == 0) {
		kept = malloc(64);
		return 0;
	}
	return down(n - 1) + 1;
}

int main(void)
{
	return down(100) == 100 ? 0 : 1;
}
