/* A static, stripped program: no allocator a tracer can find. Sleeps S
 * seconds (argv[1], default 3). */
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	sleep(argc > 1 ? (unsigned)atoi(argv[1]) : 3);
	return 0;
}
