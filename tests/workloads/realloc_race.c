/*
 * Four threads race realloc (blocks that move, freeing the old address)
 * against malloc and free of the same sizes, so that one thread can be handed
 * the address another's realloc just gave up. Each thread then leaks 25
 * blocks of 40 bytes in leak_after_race.
 */
#include <pthread.h>
#include <stdlib.h>

#define ROUNDS 20000

static void *volatile sink;

void leak_after_race(void)
{
	for (int i = 0; i < 25; i++)
		sink = malloc(40);
}

static void *race(void *arg)
{
	void *ring[8] = {0};

	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		char *p = malloc(24);

		p = realloc(p, 24 + (size_t)(i % 32) * 64); /* mostly moves */
		free(ring[i % 8]);
		ring[i % 8] = malloc(24); /* may get an address realloc just freed */
		free(p);
	}
	for (int i = 0; i < 8; i++)
		free(ring[i]);
	leak_after_race();
	return NULL;
}

int main(void)
{
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, race, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	return 0;
}
