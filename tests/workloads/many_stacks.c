/*
 * 2,048 distinct allocation stacks in one short life: 64 call sites, each
 * reached at 32 depths, each allocating and freeing a block; one leak of
 * 100 bytes in leak_once(). Run many of them, each a new address layout,
 * and their stacks outnumber any stack table. Given S (argv[1]), it stays
 * alive S seconds after, its stacks counted. Given D (argv[2], at most 60:
 * deeper stacks are cut to the same frames), each site is reached at D
 * depths: 64 * D stacks. Given a third argument, every block is kept: one
 * live block at each stack.
 */
#include <stdlib.h>
#include <unistd.h>

static int depths = 32;
static int keep;
static void *volatile sink;

void leak_once(void)
{
	sink = malloc(100);
}

#define SITE(n)                                                                                    \
	void site_##n(int depth)                                                                   \
	{                                                                                          \
		if (depth > 0) {                                                                   \
			site_##n(depth - 1);                                                       \
			sink = malloc(n + 1);                                                      \
			if (!keep)                                                                 \
				free(sink);                                                        \
		}                                                                                  \
	}
#define SITES8(a)                                                                                  \
	SITE(a##0) SITE(a##1) SITE(a##2) SITE(a##3) SITE(a##4) SITE(a##5) SITE(a##6) SITE(a##7)
SITES8(1)
SITES8(2)
SITES8(3)
SITES8(4)
SITES8(5)
SITES8(6)
SITES8(7)
SITES8(8)

#define CALL8(a)                                                                                   \
	site_##a##0(depths), site_##a##1(depths), site_##a##2(depths), site_##a##3(depths),        \
	    site_##a##4(depths), site_##a##5(depths), site_##a##6(depths), site_##a##7(depths)

int main(int argc, char **argv)
{
	if (argc > 2)
		depths = atoi(argv[2]);
	keep = argc > 3;
	CALL8(1), CALL8(2), CALL8(3), CALL8(4), CALL8(5), CALL8(6), CALL8(7), CALL8(8);
	leak_once();
	if (argc > 1)
		sleep((unsigned)atoi(argv[1]));
	return 0;
}
