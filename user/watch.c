#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "watch.h"

/* Kernel threads have no memory map: their statm is all zeros. */
static bool is_user_process(pid_t pid)
{
	char path[64];
	unsigned long long size = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fscanf(f, "%llu", &size) != 1)
		size = 0;
	fclose(f);
	return size > 0;
}

void watch_scan(struct target_set *ts)
{
	DIR *d = opendir("/proc");
	pid_t self = getpid();
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);

		if (*end || pid <= 0 || pid == self || targets_find(ts, (pid_t)pid))
			continue;
		if (is_user_process((pid_t)pid))
			targets_add(ts, (pid_t)pid);
	}
	closedir(d);
}

bool watch_settled(const struct target *t, double now)
{
	return t->watched && t->probed && t->alive && t->verdict.state == VERDICT_STEADY &&
	       now - t->probed_at >= WATCH_PROBE_MIN_S;
}

bool watch_wants_probe(const struct target *t)
{
	return t->watched && !t->probed && t->alive && t->verdict.state >= VERDICT_GROWING;
}
