#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memleak.h"
#include "memleak.skel.h"
#include "targets.h"
#include "util.h"

struct target *targets_find(struct target_set *ts, pid_t pid)
{
	for (int i = 0; i < ts->n; i++)
		if (ts->t[i].pid == pid)
			return &ts->t[i];
	return NULL;
}

struct target *targets_add(struct target_set *ts, pid_t pid)
{
	struct target *t = targets_find(ts, pid);

	if (t)
		return t;
	ts->t = xrealloc(ts->t, (ts->n + 1) * sizeof(*ts->t));
	t = &ts->t[ts->n++];
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->alive = true;
	t->pidfd = -1;
	t->prev_time = ts->start_time;
	snprintf(t->comm, sizeof(t->comm), "?");
	symbolizer_init(&t->sym, pid);
	target_refresh(t);
	return t;
}

static void read_comm(struct target *t)
{
	char path[64], comm[17];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", t->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, sizeof(comm), f)) {
		comm[strcspn(comm, "\n")] = '\0';
		snprintf(t->comm, sizeof(t->comm), "%s", comm);
	}
	fclose(f);
}

static void read_rss(struct target *t)
{
	char path[64];
	unsigned long long size, resident;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/statm", t->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fscanf(f, "%llu %llu", &size, &resident) == 2)
		t->rss_bytes = resident * (unsigned long long)sysconf(_SC_PAGESIZE);
	fclose(f);
}

void target_refresh(struct target *t)
{
	if (!t->alive)
		return;
	read_comm(t);
	read_rss(t);
	if (!symbolizer_refresh(&t->sym) && kill(t->pid, 0) && t->pidfd < 0)
		t->alive = false;
}

void target_exited(struct target *t)
{
	t->alive = false;
	if (t->pidfd >= 0) {
		close(t->pidfd);
		t->pidfd = -1;
	}
}

/* System-wide: every process with traced allocations is a target. */
static void add_allocating(struct target_set *ts, struct memleak_bpf *skel)
{
	int fd = bpf_map__fd(skel->maps.procs);
	__u32 key, next, *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (!targets_find(ts, (pid_t)key))
			targets_add(ts, (pid_t)key);
	}
}

static __u64 prev_out(const struct target *t, __u64 stack_id)
{
	for (size_t i = 0; i < t->nprev; i++)
		if (t->prev[i].stack_id == stack_id)
			return t->prev[i].out_bytes;
	return 0;
}

static void build_stack(struct target *t, struct memleak_bpf *skel, const struct stack_stat *st,
			double dt, double now, struct stack_report *s)
{
	__u64 ips[MAX_FRAMES];

	s->st = *st;
	s->growth_bps = ((double)st->out_bytes - (double)prev_out(t, st->stack_id)) / dt;
	s->oldest_age_s = st->oldest_ns ? now - st->oldest_ns / 1e9 : 0;
	s->nframes = snapshot_frames(skel, st->stack_id, ips);
	s->frames = xcalloc(s->nframes, sizeof(*s->frames));
	for (int i = 0; i < s->nframes; i++)
		symbolizer_lookup(&t->sym, ips[i], &s->frames[i]);
}

/* Remember each stack's outstanding bytes, for the next report's growth. */
static void remember_stacks(struct target *t, const struct stack_stat *first, size_t n)
{
	t->prev = xrealloc(t->prev, (n ? n : 1) * sizeof(*t->prev));
	t->nprev = n;
	for (size_t i = 0; i < n; i++) {
		t->prev[i].stack_id = first[i].stack_id;
		t->prev[i].out_bytes = first[i].out_bytes;
	}
}

static void build_proc(struct target *t, struct memleak_bpf *skel, const struct snapshot *snap,
		       const struct report_options *ro, double now, struct proc_report *p)
{
	const struct stack_stat *first = NULL;
	double dt = now - t->prev_time > 1e-3 ? now - t->prev_time : 1e-3;
	size_t n = 0;

	memset(p, 0, sizeof(*p));
	p->pid = t->pid;
	snprintf(p->comm, sizeof(p->comm), "%s", t->comm);
	p->alive = t->alive;
	p->rss_bytes = t->rss_bytes;
	p->heap = snapshot_proc(skel, (__u32)t->pid);
	p->growth_bps = (double)(outstanding_bytes(&p->heap) - t->prev_out) / dt;

	for (size_t i = 0; i < snap->nstacks; i++) {
		if (snap->stacks[i].tgid != (__u32)t->pid)
			continue;
		if (!first)
			first = &snap->stacks[i];
		n++;
	}
	p->stacks = xcalloc(ro->top, sizeof(*p->stacks));
	for (size_t i = 0; i < n && p->nstacks < ro->top && first[i].out_allocs; i++)
		build_stack(t, skel, &first[i], dt, now, &p->stacks[p->nstacks++]);
	remember_stacks(t, first, n);
	t->prev_out = outstanding_bytes(&p->heap);
	t->prev_time = now;
}

static int want_target(__u32 tgid, void *ctx)
{
	struct target_set *ts = ctx;
	struct target *t = targets_find(ts, (pid_t)tgid);

	return t && !t->gone;
}

static int by_growth(const void *a, const void *b)
{
	const struct proc_report *x = a, *y = b;

	if (x->growth_bps != y->growth_bps)
		return x->growth_bps > y->growth_bps ? -1 : 1;
	return outstanding_bytes(&y->heap) > outstanding_bytes(&x->heap) ? 1 : -1;
}

void targets_report(struct target_set *ts, struct memleak_bpf *skel,
		    const struct report_options *ro, struct report *r)
{
	double now = monotonic_s();
	struct snapshot snap;

	if (ts->every_process)
		add_allocating(ts, skel);
	snapshot_read(skel, want_target, ts, ro->older_ns, &snap);
	r->drops = snap.drops;
	r->elapsed_s = now - ts->start_time;
	r->wall = time(NULL);
	r->procs = xcalloc(ts->n, sizeof(*r->procs));
	r->nprocs = 0;
	for (int i = 0; i < ts->n; i++) {
		struct target *t = &ts->t[i];

		if (t->gone)
			continue;
		build_proc(t, skel, &snap, ro, now, &r->procs[r->nprocs++]);
		t->gone = !t->alive && !r->final;
	}
	qsort(r->procs, r->nprocs, sizeof(*r->procs), by_growth);
	snapshot_free(&snap);
}

void report_free(struct report *r)
{
	for (int i = 0; i < r->nprocs; i++) {
		for (int k = 0; k < r->procs[i].nstacks; k++)
			free(r->procs[i].stacks[k].frames);
		free(r->procs[i].stacks);
	}
	free(r->procs);
	r->procs = NULL;
	r->nprocs = 0;
}

void targets_free(struct target_set *ts)
{
	for (int i = 0; i < ts->n; i++) {
		symbolizer_free(&ts->t[i].sym);
		free(ts->t[i].prev);
		if (ts->t[i].pidfd >= 0)
			close(ts->t[i].pidfd);
	}
	free(ts->t);
	memset(ts, 0, sizeof(*ts));
}
