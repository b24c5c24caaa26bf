/* Leaks N (argv[1]) blocks of 16 bytes in leak_flood: more than the allocs map holds. */
#include <stdlib.h>

void leak_flood(long n)
{
	for (long i = 0; i < n; i++)
		if (!malloc(16))
			abort();
}

int main(int argc, char **argv)
{
	leak_flood(argc > 1 ? atol(argv[1]) : 0);
	return 0;
}
