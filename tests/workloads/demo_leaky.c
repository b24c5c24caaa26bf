/*
 * The demo: a toy request loop for about 16 seconds. Every request allocates
 * and frees its buffers; parse_header forgets to free 1 in 10 of its copies.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct request {
	char *body;
	char *header;
};

char *parse_header(int n)
{
	char *h = malloc(256);

	memset(h, 'h', 256);
	return n % 10 == 0 ? NULL : h; /* the bug: the copy is lost */
}

void handle_request(int n)
{
	struct request r = {.body = malloc(4096)};

	r.header = parse_header(n);
	free(r.header);
	free(r.body);
}

int main(void)
{
	for (int n = 1; n <= 16000; n++) {
		handle_request(n);
		if (n % 100 == 0)
			usleep(100000);
	}
	return 0;
}
