/*
 * Kernel memory that leaks: every 100 ms a new pipe, one byte written into it
 * (the kernel gives the pipe a page to hold it), never closed. Runs for
 * argv[1] seconds; 10 pipes, 40 KiB of pipe pages and their kernel objects
 * per second.
 */
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int ticks = (int)((argc > 1 ? atof(argv[1]) : 30) * 10);
	struct rlimit files = {.rlim_cur = 8192, .rlim_max = 8192};

	setrlimit(RLIMIT_NOFILE, &files);
	for (int i = 0; i < ticks; i++) {
		int fds[2];

		if (pipe(fds) || write(fds[1], "x", 1) != 1)
			return 1;
		usleep(100000);
	}
	return 0;
}
