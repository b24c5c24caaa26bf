/*
 * Fork without exec: the child leaks 10 blocks of 1337 bytes (LLVM's
 * LeakSanitizer test fork_and_leak, in C) and exits; the parent allocates
 * nothing, waits for it and exits 0.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile last; /* the newest block, so that it is written */

void leak_in_child(void)
{
	for (int i = 0; i < 10; i++) {
		last = malloc(1337);
		memset(last, 1, 1337);
	}
	last = NULL;
}

int main(void)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return 1;
	if (pid == 0) {
		leak_in_child();
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 1;
	return WEXITSTATUS(status);
}
