/*
 * Leaks N (argv[1]) blocks of 16 bytes in leak_flood, then stays alive for S
 * (argv[2], default 0) seconds: more blocks than the live-block table holds, or many
 * processes holding many blocks.
 */
#include <stdlib.h>
#include <unistd.h>

void leak_flood(long n)
{
	for (long i = 0; i < n; i++)
		if (!malloc(16))
			abort();
}

int main(int argc, char **argv)
{
	leak_flood(argc > 1 ? atol(argv[1]) : 0);
	sleep(argc > 2 ? (unsigned)atoi(argv[2]) : 0);
	return 0;
}
