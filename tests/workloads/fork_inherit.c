/*
 * A forked child inherits its parent's blocks: the parent keeps 20 blocks
 * of 100 bytes in keep_in_parent, then forks; the child frees 5 of them,
 * leaks 10 blocks of 1337 bytes in leak_in_child and exits. The parent
 * waits and exits: its 20 blocks are in use at its exit, the child's 15
 * inherited and 10 of its own at its.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *kept[20];
static void *volatile last;

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

int main(void)
{
	int status;
	pid_t pid;

	keep_in_parent();
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		for (int i = 0; i < 5; i++)
			free(kept[i]);
		leak_in_child();
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 1;
	return WEXITSTATUS(status);
}
