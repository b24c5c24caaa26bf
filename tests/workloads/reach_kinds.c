/*
 * Each of valgrind's leak kinds from its own function, for a scan to class
 * (functions: blocks x bytes):
 *   drop_pointers    lost       4 x 100   (pointers overwritten)
 *   keep_in_global   reachable  1 x 200   (a global points to it)
 *   keep_in_tls      reachable  1 x 300   (a __thread variable does)
 *   keep_middle      possible   1 x 400   (only a pointer to its middle)
 *   tree_root        lost       1 x 500   (a lost tree: its root ...
 *   tree_child       indirect   3 x 64     ... and the children only it reaches)
 *   cycle_node       lost+indirect 2 x 48 (two blocks pointing to each other)
 *   keep_on_stack    reachable  1 x 700   (a sleeping thread's local)
 *   hold_in_register reachable  1 x 900   (live only: a spinning thread keeps
 *                                          it in a register, nowhere else)
 * No stdio before the end: its buffers would be blocks of their own.
 * With "live" as its argument it sets up after a line on stdin, says
 * "set", and exits after another line; otherwise it exits at once. With
 * "kept", only the reachable ones.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *keep_global;
__thread void *volatile tls_keep;
char *middle;
static pthread_barrier_t ready;

/* Overwrite the stack below the caller, where the blocks' addresses were. */
static void scrub(void)
{
	volatile char pad[16384];

	memset((char *)pad, 0, sizeof(pad));
}

void drop_pointers(void)
{
	void *volatile p;

	for (int i = 0; i < 4; i++)
		p = malloc(100);
	p = NULL;
	(void)p;
}

void keep_in_global(void)
{
	keep_global = malloc(200);
}

void keep_in_tls(void)
{
	tls_keep = malloc(300);
}

void keep_middle(void)
{
	middle = (char *)calloc(1, 400) + 160;
}

void *tree_child(void)
{
	return calloc(1, 64);
}

void **tree_root(void)
{
	void **root = calloc(1, 500);

	for (int i = 0; i < 3; i++)
		root[i] = tree_child();
	return root;
}

void lose_tree(void)
{
	void **volatile root = tree_root();

	root = NULL;
	(void)root;
}

void **cycle_node(void)
{
	return calloc(1, 48);
}

void lose_cycle(void)
{
	void *volatile *a = cycle_node(), *volatile *b = cycle_node();

	a[0] = (void *)b;
	b[0] = (void *)a;
}

void *keep_on_stack(void *arg)
{
	void *volatile mine = malloc(700);

	(void)arg;
	pthread_barrier_wait(&ready);
	for (;;)
		pause();
	return (void *)mine;
}

void *hold_in_register(void *arg)
{
	register void *r asm("r12") = malloc(900);

	(void)arg;
	pthread_barrier_wait(&ready);
	scrub(); /* where the barrier may have saved it */
	for (;;)
		asm volatile("pause" : "+r"(r));
	return NULL;
}

static void wait_line(void)
{
	char c;

	while (read(0, &c, 1) == 1 && c != '\n')
		;
}

int main(int argc, char **argv)
{
	int live = argc > 1 && !strcmp(argv[1], "live");
	int kept = argc > 1 && !strcmp(argv[1], "kept");
	pthread_t t;

	if (live)
		wait_line();
	pthread_barrier_init(&ready, NULL, live ? 3 : 2);
	pthread_create(&t, NULL, keep_on_stack, NULL);
	if (live)
		pthread_create(&t, NULL, hold_in_register, NULL);
	if (!kept)
		drop_pointers();
	scrub();
	keep_in_global();
	keep_in_tls();
	if (!kept) {
		keep_middle();
		lose_tree();
		scrub();
		lose_cycle();
	}
	scrub();
	pthread_barrier_wait(&ready);
	if (live) {
		if (write(1, "set\n", 4) != 4)
			return 1;
		wait_line();
		if (write(1, "done\n", 5) != 5)
			return 1;
	}
	return 0;
}
