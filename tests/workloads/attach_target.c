/*
 * For -p: writes "ready", waits for a line on stdin, leaks 7 x 512 bytes in
 * leak_after_attach among freed churn, then exits at the end of its input.
 */
#include <stdlib.h>
#include <unistd.h>

static void *volatile sink[8];

void leak_after_attach(void)
{
	for (int i = 0; i < 7; i++)
		sink[i] = malloc(512);
}

static void wait_line(void)
{
	char c;

	while (read(0, &c, 1) == 1 && c != '\n')
		;
}

int main(void)
{
	if (write(1, "ready\n", 6) != 6)
		return 1;
	wait_line();
	for (int i = 0; i < 10000; i++)
		free(malloc(64 + i % 100));
	leak_after_attach();
	if (write(1, "done\n", 5) != 5)
		return 1;
	wait_line();
	return 0;
}
