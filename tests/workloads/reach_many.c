/*
 * Many blocks for a scan to follow: N blocks of SIZE bytes in a list from a
 * global, every 100th dropped from it (lost, with the rest of nothing: its
 * successor is still linked). After a line on stdin it allocates and says
 * "set"; after another it says "done" and exits 0.
 * usage: reach_many N SIZE
 */
#include <stdlib.h>
#include <unistd.h>

struct node {
	struct node *next;
};

struct node *head;

static void wait_line(void)
{
	char c;

	while (read(0, &c, 1) == 1 && c != '\n')
		;
}

static void say(const char *s, size_t n)
{
	if (write(1, s, n) != (ssize_t)n)
		exit(1);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	size_t size = argc > 2 ? (size_t)atol(argv[2]) : 100;
	struct node **link = &head;

	wait_line();
	for (long i = 0; i < n; i++) {
		struct node *b = malloc(size);

		b->next = NULL;
		if (i % 100 == 99)
			continue; /* dropped */
		*link = b;
		link = &b->next;
	}
	say("set\n", 4);
	wait_line();
	say("done\n", 5);
	return 0;
}
