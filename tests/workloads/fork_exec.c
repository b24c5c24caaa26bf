/*
 * Forks three children that exec argv[1] (with the rest of argv), waits for
 * them, then allocates without end until it is killed.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	for (int i = 0; i < 3 && argc > 1; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			execv(argv[1], argv + 1);
			_exit(127);
		}
		waitpid(pid, NULL, 0);
	}
	if (write(1, "looping\n", 8) != 8)
		return 1;
	for (;;)
		free(malloc(1000));
}
