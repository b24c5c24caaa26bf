/*
 * What moves a process's resident pages, each step at its own function so
 * that pages mode's stacks tell them apart (sizes in pages of 4 KiB):
 *   touch_a     writes region A, 1024 pages;
 *   a child is forked and waits; own_stack writes 16 KiB of the stack
 *               (the parent's copies of the stack pages it shares with the
 *               child are its, whatever their offset: ASLR); rewrite_a
 *               writes A again: each page's
 *               copy-on-write gives the parent a new page, and the old one
 *               stays the child's until it exits (the child is then let go
 *               and reaped);
 *   madvise(MADV_DONTNEED) drops the first 512 pages of A; retouch_a
 *               writes them again;
 *   touch_b     writes region B, 512 pages, which is then unmapped;
 *   touch_huge  (argv[1] "huge") writes a 2 MiB-aligned 4 MiB region with
 *               MADV_HUGEPAGE: two huge pages where the kernel has them.
 * Expected at exit: rewrite_a 512 pages, retouch_a 512, touch_a 0,
 * touch_b 0, touch_huge 1024. Prints "ready PID" and waits for a line on
 * stdin before it exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE   4096
#define A_SIZE (1024 * PAGE)
#define B_SIZE (512 * PAGE)
#define H_SIZE (4 << 20)

static char *map(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

/* Functions that write a byte a page: every page is brought in by the one
 * named for the step. */
#define TOUCHER(name, byte)                                                                        \
	void name(char *p, size_t len)                                                             \
	{                                                                                          \
		for (size_t i = 0; i < len; i += PAGE)                                             \
			p[i] = byte;                                                               \
	}

/* Write 16 KiB below here on the stack: its pages copied now, not by
 * whatever runs next at the depth where a page starts. */
static void own_stack(void)
{
	volatile char pad[16384];

	memset((char *)pad, 0, sizeof(pad));
}

TOUCHER(touch_a, 1)
TOUCHER(rewrite_a, 2)
TOUCHER(retouch_a, 3)
TOUCHER(touch_b, 4)
TOUCHER(touch_huge, 5)

int main(int argc, char **argv)
{
	char *a = map(A_SIZE), *b = map(B_SIZE), line[16];
	int gate[2];
	pid_t child;

	touch_a(a, A_SIZE);
	if (pipe(gate))
		return 1;
	child = fork();
	if (child == 0) {
		close(gate[1]);
		while (read(gate[0], line, 1) > 0)
			;
		_exit(0);
	}
	close(gate[0]);
	own_stack();
	rewrite_a(a, A_SIZE);
	close(gate[1]);
	waitpid(child, NULL, 0);
	madvise(a, A_SIZE / 2, MADV_DONTNEED);
	retouch_a(a, A_SIZE / 2);
	touch_b(b, B_SIZE);
	munmap(b, B_SIZE);
	if (argc > 1 && strcmp(argv[1], "huge") == 0) {
		char *raw = map(H_SIZE + (2 << 20));
		char *h = (char *)(((unsigned long)raw + (2 << 20) - 1) & ~((2UL << 20) - 1));

		madvise(h, H_SIZE, MADV_HUGEPAGE);
		touch_huge(h, H_SIZE);
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	return 0;
}
