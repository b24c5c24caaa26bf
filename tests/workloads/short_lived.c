/*
 * A short-lived process: leaks 7 x 512 bytes in leak_before_exit, frees 100
 * other blocks, and exits. With the argument "exec" it first leaks 10 x 1000
 * bytes in leak_before_exec and then runs itself anew, without arguments:
 * those blocks belong to the image that exec replaced.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink[16];

void leak_before_exit(void)
{
	for (int i = 0; i < 7; i++)
		sink[i] = malloc(512);
}

void leak_before_exec(void)
{
	for (int i = 0; i < 10; i++)
		sink[i] = malloc(1000);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "exec") == 0) {
		leak_before_exec();
		execl("/proc/self/exe", argv[0], (char *)NULL);
		return 127;
	}
	for (int i = 0; i < 100; i++)
		free(malloc(64 + i));
	leak_before_exit();
	return 0;
}
