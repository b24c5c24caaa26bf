/*
 * The demo: a toy request loop, about 1,000 requests a second. Every
 * request allocates and frees its buffers; from request 22,001 on (a client
 * that sends a header the parser treats as new), parse_header forgets to
 * free 1 in 10 of its copies: 25 KiB a second. 38,000 requests, so
 * parse_header leaks 1,600 x 256 B = 409,600 B.
 * Arguments (tests): the number of requests, and the first buggy one.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct request {
	char *body;
	char *header;
};

static int buggy; /* the bug's path is taken */

char *parse_header(int n)
{
	char *h = malloc(256);

	memset(h, 'h', 256);
	return buggy && n % 10 == 0 ? NULL : h; /* the bug: the copy is lost */
}

void handle_request(int n)
{
	struct request r = {.body = malloc(4096)};

	r.header = parse_header(n);
	free(r.header);
	free(r.body);
}

int main(int argc, char **argv)
{
	int requests = argc > 1 ? atoi(argv[1]) : 38000;
	int bug_from = argc > 2 ? atoi(argv[2]) : 22001;

	for (int n = 1; n <= requests; n++) {
		buggy = n >= bug_from;
		handle_request(n);
		if (n % 100 == 0)
			usleep(100000);
	}
	return 0;
}
