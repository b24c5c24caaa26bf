/*
 * Fork without exec: the child leaks 10 blocks of 1337 bytes in
 * leak_in_child (LLVM's LeakSanitizer test fork_and_leak, in C) and exits;
 * the parent waits for it and exits 0. With the argument "inherit", the
 * parent first keeps 20 blocks of 100 bytes in keep_in_parent, and the
 * child frees 5 of them: 15 inherited blocks and its 10 are in use at its
 * exit, the parent's 20 at the parent's.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *kept[20];
static void *volatile last; /* the newest block, so that it is written */

void keep_in_parent(void)
{
	for (int i = 0; i < 20; i++)
		kept[i] = malloc(100);
}

void leak_in_child(void)
{
	for (int i = 0; i < 10; i++) {
		last = malloc(1337);
		memset(last, 1, 1337);
	}
	last = NULL;
}

int main(int argc, char **argv)
{
	int inherit = argc > 1 && strcmp(argv[1], "inherit") == 0, status;
	pid_t pid;

	if (inherit)
		keep_in_parent();
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		for (int i = 0; i < 5 && inherit; i++)
			free(kept[i]);
		leak_in_child();
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 1;
	return WEXITSTATUS(status);
}
