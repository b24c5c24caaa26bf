/*
 * Allocation in one thread, free in another: a producer allocates 20,000
 * blocks of 48 bytes, a consumer frees all but every 1000th.
 * Leaks: produce 20 x 48 = 960 bytes.
 */
#include <pthread.h>
#include <stdlib.h>

#define N 20000

static void *queue[N];
static int head, tail, done;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static void *volatile kept[N / 1000];

void *produce(void *arg)
{
	(void)arg;
	for (int i = 0; i < N; i++) {
		void *p = malloc(48);

		pthread_mutex_lock(&lock);
		queue[tail++] = p;
		pthread_cond_signal(&more);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

void *consume(void *arg)
{
	(void)arg;
	while (done < N) {
		void *p;

		pthread_mutex_lock(&lock);
		while (head == tail)
			pthread_cond_wait(&more, &lock);
		p = queue[head++];
		pthread_mutex_unlock(&lock);
		if (done % 1000 == 0)
			kept[done / 1000] = p;
		else
			free(p);
		done++;
	}
	return NULL;
}

int main(void)
{
	pthread_t a, b;

	pthread_create(&b, NULL, consume, NULL);
	pthread_create(&a, NULL, produce, NULL);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	return 0;
}
