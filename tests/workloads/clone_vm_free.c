/*
 * A child made by clone(CLONE_VM) without CLONE_THREAD (a process of its
 * own in its parent's memory, as vfork's and posix_spawn's are) frees the
 * 100 blocks of 1000 bytes its parent allocated in keep_blocks. Nothing is
 * left of them; writes "freed".
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void *blocks[100];

void keep_blocks(void)
{
	for (int i = 0; i < 100; i++)
		blocks[i] = malloc(1000);
}

static int child(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100; i++)
		free(blocks[i]);
	return 0;
}

int main(void)
{
	static char stack[1 << 16] __attribute__((aligned(16)));
	int status;
	pid_t pid;

	keep_blocks();
	pid = clone(child, stack + sizeof(stack), CLONE_VM | SIGCHLD, NULL);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 1;
	printf("freed\n");
	return 0;
}
