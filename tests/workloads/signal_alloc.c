/*
 * A signal handler that allocates: a 2 kHz timer's handler mallocs and frees
 * while main leaks 200,000 x 100 bytes in leak_in_main. The allocator is the
 * program's own and async-signal-safe (a bump allocator: a size header, free
 * only counts), so that a handler may call it whatever it interrupted.
 * Writes how many times the handler ran.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#define ARENA (256u << 20)

static char arena[ARENA] __attribute__((aligned(16)));
static size_t used, freed;

void *malloc(size_t n)
{
	size_t take = (n + 31) & ~(size_t)15, at = __atomic_fetch_add(&used, take, __ATOMIC_RELAXED);

	if (at + take > ARENA)
		return NULL;
	*(size_t *)(arena + at) = n;
	return arena + at + 16;
}

void free(void *p)
{
	if (p)
		__atomic_fetch_add(&freed, 1, __ATOMIC_RELAXED);
}

void *calloc(size_t n, size_t size)
{
	void *p = n && size > (size_t)-1 / n ? NULL : malloc(n * size);

	return p ? memset(p, 0, n * size) : NULL;
}

void *realloc(void *old, size_t n)
{
	void *p = malloc(n);
	size_t had = old ? ((size_t *)old)[-2] : 0;

	if (p && old)
		memcpy(p, old, had < n ? had : n);
	return p;
}

static volatile long handled;
static void *volatile sink;

static void on_tick(int sig)
{
	(void)sig;
	for (int i = 0; i < 4; i++)
		free(malloc(64));
	handled++;
}

void leak_in_main(void)
{
	for (int i = 0; i < 200000; i++)
		sink = malloc(100);
}

int main(void)
{
	struct itimerval tick = {{0, 500}, {0, 500}};
	struct sigaction sa = {.sa_handler = on_tick, .sa_flags = SA_RESTART};

	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &tick, NULL);
	leak_in_main();
	setitimer(ITIMER_REAL, &(struct itimerval){0}, NULL);
	printf("handler ran %ld times\n", handled);
	return 0;
}
