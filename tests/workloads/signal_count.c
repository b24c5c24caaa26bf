/*
 * What a launched command sees of its surroundings: counts the SIGINT,
 * SIGTERM, SIGHUP and SIGQUIT it is sent, and after SECONDS writes them with
 * its soft open-files limit and its blocked signals, then exits 7. Writes
 * "ready" once its handlers are in place.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t count[NSIG];

static void on_signal(int sig)
{
	count[sig]++;
}

static unsigned long long blocked(void)
{
	char line[256];
	unsigned long long mask = ~0ULL;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		sscanf(line, "SigBlk: %llx", &mask);
	if (f)
		fclose(f);
	return mask;
}

int main(int argc, char **argv)
{
	const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	struct timespec start, now;
	struct rlimit nofile;

	for (int i = 0; i < 4; i++)
		signal(sigs[i], on_signal);
	getrlimit(RLIMIT_NOFILE, &nofile);
	printf("ready\n");
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		usleep(10000);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - start.tv_sec + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
	printf("INT %d TERM %d HUP %d QUIT %d nofile %llu blocked %llx\n", (int)count[SIGINT],
	       (int)count[SIGTERM], (int)count[SIGHUP], (int)count[SIGQUIT],
	       (unsigned long long)nofile.rlim_cur, blocked());
	return 7;
}
