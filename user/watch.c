#include <dirent.h>
#include <bpf/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "memleak.h"
#include "util.h"
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

/* Whether pid's parent is a traced process, alive. */
static bool born_of_target(struct target_set *ts, pid_t pid)
{
	pid_t parent = proc_status_int(pid, "PPid");
	const struct target *t = parent > 0 ? targets_find(ts, parent) : NULL;

	return t && t->alive && t->pid != KERNEL_OWNER;
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

		if (*end || pid <= 0 || pid == self || !targets_newcomer(ts, (pid_t)pid))
			continue;
		if (is_user_process((pid_t)pid))
			targets_add(ts, (pid_t)pid);
	}
	closedir(d);
}

struct life {
	__u32 tgid, events;
};

/* Keys are collected first: deleting during the walk could restart it.
 * Each is then taken out with its events in one step, so that an event
 * noted meanwhile is either taken or left for the next drain. */
static size_t drain(int fd, struct life **out)
{
	__u32 key, next, *prev = NULL, *keys = NULL;
	size_t nkeys = 0, n = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		keys = xrealloc(keys, (nkeys + 1) * sizeof(*keys));
		keys[nkeys++] = key;
	}
	*out = xcalloc(nkeys, sizeof(**out));
	for (size_t i = 0; i < nkeys; i++) {
		(*out)[n].tgid = keys[i];
		if (bpf_map_lookup_and_delete_elem(fd, &keys[i], &(*out)[n].events) == 0)
			n++;
	}
	free(keys);
	return n;
}

void watch_lifecycle(struct target_set *ts, int fd)
{
	struct life *lives;
	size_t n = drain(fd, &lives);
	pid_t self = getpid();

	for (size_t i = 0; i < n; i++) {
		pid_t pid = (pid_t)lives[i].tgid;
		struct target *t = targets_find(ts, pid);

		if (t && (lives[i].events & LIFE_EXEC))
			t->exec_pending = true;
		if (t && (lives[i].events & LIFE_ENDED)) {
			target_exited(t);
			t = NULL; /* a process alive under its pid now is another */
		}
		if (ts->watching && !t && pid != self && is_user_process(pid) &&
		    targets_newcomer(ts, pid))
			targets_add(ts, pid);
		else if (ts->follow && !t && (lives[i].events & LIFE_BORN) && born_of_target(ts, pid))
			targets_add(ts, pid)->born = true;
	}
	free(lives);
}

bool watch_settled(const struct target *t, double now)
{
	return t->watched && t->probed && t->alive && t->verdict.state == VERDICT_STEADY &&
	       now - t->probed_at >= WATCH_PROBE_MIN_S;
}

bool watch_wants_probe(const struct target *t)
{
	return t->watched && !t->probed && !t->unprobing && t->alive &&
	       t->verdict.state >= VERDICT_GROWING;
}
