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

#define STACK_CURVE_POINTS 256
#define HEAP_CURVE_POINTS  4096

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
	curve_init(&t->heap, HEAP_CURVE_POINTS);
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

/* A stack seen for the first time held nothing before: its curve starts
 * with that, so a new stack is judged on the whole run, not from now on. */
static struct stack_history *history_of(struct target *t, __u64 stack_id, double since)
{
	struct stack_history *h;

	for (size_t i = 0; i < t->nstacks; i++)
		if (t->stacks[i].stack_id == stack_id)
			return &t->stacks[i];
	t->stacks = xrealloc(t->stacks, (t->nstacks + 1) * sizeof(*t->stacks));
	h = &t->stacks[t->nstacks++];
	memset(h, 0, sizeof(*h));
	h->stack_id = stack_id;
	curve_init(&h->curve, STACK_CURVE_POINTS);
	curve_add(&h->curve, 0, 0);
	if (since > 0)
		curve_add(&h->curve, since, 0);
	return h;
}

/* Growth: the floor's trend once judged, the last interval's change before. */
static double growth_of(const struct verdict *v, double now_value, double prev_value, double dt)
{
	if (v->state != VERDICT_WARMUP)
		return v->growth_bps;
	return (now_value - prev_value) / dt;
}

/* Add each stack's outstanding bytes to its curve and judge it. */
static void judge_stacks(struct target *t, const struct stack_stat *first, size_t n, double at,
			 double dt, struct stack_report *all)
{
	for (size_t i = 0; i < n; i++) {
		struct stack_history *h = history_of(t, first[i].stack_id, at - dt);
		double prev = h->curve.n ? h->curve.p[h->curve.n - 1].last : 0;

		curve_add(&h->curve, at, (double)first[i].out_bytes);
		curve_judge(&h->curve, &h->verdict);
		all[i].st = first[i];
		all[i].growth_bps = growth_of(&h->verdict, (double)first[i].out_bytes, prev, dt);
		all[i].suspect =
		    h->verdict.state == VERDICT_LEAK || h->verdict.state == VERDICT_GROWING;
	}
}

static int by_suspicion(const void *a, const void *b)
{
	const struct stack_report *x = a, *y = b;

	if (x->suspect != y->suspect)
		return x->suspect ? -1 : 1;
	if (x->suspect && x->growth_bps != y->growth_bps)
		return x->growth_bps > y->growth_bps ? -1 : 1;
	if (x->st.out_bytes != y->st.out_bytes)
		return x->st.out_bytes > y->st.out_bytes ? -1 : 1;
	return 0;
}

static void add_frames(struct target *t, struct memleak_bpf *skel, double now,
		       struct stack_report *s)
{
	__u64 ips[MAX_FRAMES];

	s->oldest_age_s = s->st.oldest_ns ? now - s->st.oldest_ns / 1e9 : 0;
	s->nframes = snapshot_frames(skel, s->st.stack_id, ips);
	s->frames = xcalloc(s->nframes, sizeof(*s->frames));
	for (int i = 0; i < s->nframes; i++)
		symbolizer_lookup(&t->sym, ips[i], &s->frames[i]);
}

static void build_proc(struct target *t, struct memleak_bpf *skel, const struct snapshot *snap,
		       const struct report_options *ro, double start, double now,
		       struct proc_report *p)
{
	const struct stack_stat *first = NULL;
	double dt = now - t->prev_time > 1e-3 ? now - t->prev_time : 1e-3;
	struct stack_report *all;
	size_t n = 0;

	memset(p, 0, sizeof(*p));
	p->pid = t->pid;
	snprintf(p->comm, sizeof(p->comm), "%s", t->comm);
	p->alive = t->alive;
	p->rss_bytes = t->rss_bytes;
	p->heap = snapshot_proc(skel, (__u32)t->pid);
	p->verdict = t->verdict;
	p->growth_bps =
	    growth_of(&t->verdict, (double)outstanding_bytes(&p->heap), (double)t->prev_out, dt);

	for (size_t i = 0; i < snap->nstacks; i++) {
		if (snap->stacks[i].tgid != (__u32)t->pid)
			continue;
		if (!first)
			first = &snap->stacks[i];
		n++;
	}
	all = xcalloc(n, sizeof(*all));
	judge_stacks(t, first, n, now - start, dt, all);
	qsort(all, n, sizeof(*all), by_suspicion);
	p->stacks = xcalloc(ro->top, sizeof(*p->stacks));
	for (size_t i = 0; i < n && p->nstacks < ro->top && all[i].st.out_allocs; i++) {
		p->stacks[p->nstacks] = all[i];
		add_frames(t, skel, now, &p->stacks[p->nstacks++]);
	}
	free(all);
	t->prev_out = outstanding_bytes(&p->heap);
	t->prev_time = now;
}

void targets_sample(struct target_set *ts, struct memleak_bpf *skel)
{
	double now = monotonic_s();

	if (ts->every_process)
		add_allocating(ts, skel);
	for (int i = 0; i < ts->n; i++) {
		struct target *t = &ts->t[i];
		struct counts c;

		if (!t->alive)
			continue;
		read_rss(t);
		c = snapshot_proc(skel, (__u32)t->pid);
		curve_add(&t->heap, now - ts->start_time, (double)outstanding_bytes(&c));
		curve_judge(&t->heap, &t->verdict);
	}
}

bool targets_any_leak(const struct target_set *ts)
{
	for (int i = 0; i < ts->n; i++)
		if (ts->t[i].verdict.state == VERDICT_LEAK)
			return true;
	return false;
}

static void target_free(struct target *t)
{
	symbolizer_free(&t->sym);
	for (size_t k = 0; k < t->nstacks; k++)
		curve_free(&t->stacks[k].curve);
	free(t->stacks);
	curve_free(&t->heap);
	if (t->pidfd >= 0)
		close(t->pidfd);
}

/* A process that has exited and had its last report leaves nothing behind. */
static void forget_gone(struct target_set *ts, struct memleak_bpf *skel)
{
	int kept = 0;

	for (int i = 0; i < ts->n; i++) {
		if (!ts->t[i].gone) {
			ts->t[kept++] = ts->t[i];
			continue;
		}
		snapshot_forget(skel, (__u32)ts->t[i].pid);
		target_free(&ts->t[i]);
	}
	ts->n = kept;
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
		build_proc(t, skel, &snap, ro, ts->start_time, now, &r->procs[r->nprocs++]);
		t->gone = !t->alive && !r->final;
	}
	qsort(r->procs, r->nprocs, sizeof(*r->procs), by_growth);
	snapshot_free(&snap);
	forget_gone(ts, skel);
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
	for (int i = 0; i < ts->n; i++)
		target_free(&ts->t[i]);
	free(ts->t);
	memset(ts, 0, sizeof(*ts));
}
