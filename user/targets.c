#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memleak.h"
#include "targets.h"
#include "util.h"

#define STACK_CURVE_POINTS 256
#define CURVE_POINTS	   4096

struct target *targets_find(struct target_set *ts, pid_t pid)
{
	for (int i = 0; i < ts->n; i++)
		if (ts->t[i].pid == pid && ts->t[i].alive)
			return &ts->t[i];
	return NULL;
}

/* When the process under pid started (clock ticks after boot); 0 if gone. */
static unsigned long long process_start(pid_t pid)
{
	unsigned long long start = 0;
	char path[64], buf[1024], *end;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	/* After the name (which may hold anything), field 22 is the 20th. */
	if ((end = strrchr(buf, ')')) &&
	    sscanf(end + 1,
		   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
		   "%*d %*d %llu",
		   &start) != 1)
		start = 0;
	return start;
}

bool targets_newcomer(const struct target_set *ts, pid_t pid)
{
	bool exited = false;
	unsigned long long now;

	for (int i = 0; i < ts->n; i++) {
		if (ts->t[i].pid == pid && ts->t[i].alive)
			return false;
		exited |= ts->t[i].pid == pid;
	}
	if (!exited)
		return true;
	now = process_start(pid); /* only for a pid seen exiting */
	for (int i = 0; i < ts->n; i++)
		if (ts->t[i].pid == pid && (!now || ts->t[i].started == now))
			return false;
	return true;
}

/* A process of a report: a pid may name one that exited and a newcomer. */
static struct target *target_of(struct target_set *ts, const struct proc_report *p)
{
	for (int i = 0; i < ts->n; i++)
		if (ts->t[i].pid == p->pid && ts->t[i].alive == p->alive)
			return &ts->t[i];
	return NULL;
}

/* The name the kernel saw at the process's first allocation or last exec
 * (the user heap's record, else the kernel's): for a process gone before
 * /proc could name it, or that exec'd after /proc last did. */
static void name_from_kernel(struct target *t, const struct proc_counts *heap,
			     const struct proc_counts *kernel)
{
	const char *name = heap->comm[0] ? heap->comm : kernel->comm;

	if (name[0] && (!t->alive || strcmp(t->comm, "?") == 0))
		snprintf(t->comm, sizeof(t->comm), "%.16s", name);
}

static struct target *new_target(struct target_set *ts, pid_t pid)
{
	struct target *t;

	ts->t = xrealloc(ts->t, (ts->n + 1) * sizeof(*ts->t));
	t = &ts->t[ts->n++];
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->alive = true;
	t->pidfd = -1;
	t->watched = ts->watching && pid != KERNEL_OWNER;
	t->prev_time = ts->start_time;
	snprintf(t->comm, sizeof(t->comm), pid == KERNEL_OWNER ? "[kernel]" : "?");
	symbolizer_init(&t->sym, pid);
	curve_init(&t->mem, CURVE_POINTS);
	curve_init(&t->kernel, CURVE_POINTS);
	return t;
}

struct target *targets_add(struct target_set *ts, pid_t pid)
{
	struct target *t = targets_find(ts, pid);

	if (t)
		return t;
	t = new_target(ts, pid);
	t->started = process_start(pid);
	target_refresh(t);
	name_from_kernel(t, &(struct proc_counts){0}, &(struct proc_counts){0});
	if (strcmp(t->comm, "?") == 0) {
		struct proc_counts heap = snapshot_proc(&ts->heap, (__u32)pid, VIEW_LIVE);
		struct proc_counts kernel = snapshot_proc(&ts->kernel, (__u32)pid, VIEW_LIVE);

		name_from_kernel(t, &heap, &kernel);
	}
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

/* RSS, and its anonymous part: resident minus the file-backed and shared pages. */
static void read_rss(struct target *t)
{
	unsigned long long size, resident, shared, page = (unsigned long long)sysconf(_SC_PAGESIZE);
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/statm", t->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fscanf(f, "%llu %llu %llu", &size, &resident, &shared) == 3) {
		t->rss_bytes = resident * page;
		t->anon_bytes = (resident - (shared < resident ? shared : resident)) * page;
	}
	fclose(f);
}

void target_refresh(struct target *t)
{
	if (!t->alive || t->pid == KERNEL_OWNER)
		return;
	read_comm(t);
	read_rss(t);
	if (t->watched && !t->probed) { /* its memory map is needed once probed */
		t->alive = kill(t->pid, 0) == 0;
		return;
	}
	if (!symbolizer_refresh(&t->sym) && kill(t->pid, 0) && t->pidfd < 0)
		t->alive = false;
}

void target_exited(struct target *t)
{
	t->alive = false;
	probes_detach_later(&t->probes, true); /* no order to keep */
	if (t->pidfd >= 0) {
		close(t->pidfd);
		t->pidfd = -1;
	}
}

/* A target of pid that exited and is not retired yet. */
static bool retiring(const struct target_set *ts, pid_t pid)
{
	for (int i = 0; i < ts->n; i++)
		if (ts->t[i].pid == pid && !ts->t[i].alive && !ts->t[i].retired)
			return true;
	return false;
}

/* System-wide: every process with traced allocations is a target (the
 * entries of one that exited are its own, unless a newcomer runs under its
 * pid). */
static void add_owners(struct target_set *ts, int fd)
{
	__u32 key, next, *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (targets_newcomer(ts, (pid_t)key))
			targets_add(ts, (pid_t)key);
	}
}

/* A stack seen for the first time held nothing before: its curve starts
 * with that, so a new stack is judged on the whole run, not from now on. */
static size_t first_slot(const struct target *t, __u64 stack_id, bool kernel)
{
	return (size_t)(((stack_id ^ kernel) * 0x9e3779b97f4a7c15ULL) >> 32) & (t->index_slots - 1);
}

static void index_stack(struct target *t, size_t i)
{
	size_t s = first_slot(t, t->stacks[i].stack_id, t->stacks[i].kernel);

	while (t->stack_index[s])
		s = (s + 1) & (t->index_slots - 1);
	t->stack_index[s] = (unsigned)i + 1;
}

static struct stack_history *find_history(const struct target *t, __u64 stack_id, bool kernel)
{
	if (!t->index_slots)
		return NULL;
	for (size_t s = first_slot(t, stack_id, kernel); t->stack_index[s];
	     s = (s + 1) & (t->index_slots - 1)) {
		struct stack_history *h = &t->stacks[t->stack_index[s] - 1];

		if (h->stack_id == stack_id && h->kernel == kernel)
			return h;
	}
	return NULL;
}

/* Room for one more history, the index kept at most half full. */
static void grow_histories(struct target *t)
{
	if (t->nstacks == t->stacks_cap) {
		t->stacks_cap = t->stacks_cap ? t->stacks_cap * 2 : 16;
		t->stacks = xrealloc(t->stacks, t->stacks_cap * sizeof(*t->stacks));
	}
	if ((t->nstacks + 1) * 2 <= t->index_slots)
		return;
	free(t->stack_index);
	t->index_slots = t->index_slots ? t->index_slots * 2 : 64;
	t->stack_index = xcalloc(t->index_slots, sizeof(*t->stack_index));
	for (size_t i = 0; i < t->nstacks; i++)
		index_stack(t, i);
}

static struct stack_history *history_of(struct target *t, __u64 stack_id, bool kernel, double since)
{
	struct stack_history *h = find_history(t, stack_id, kernel);

	if (h)
		return h;
	grow_histories(t);
	h = &t->stacks[t->nstacks];
	memset(h, 0, sizeof(*h));
	h->stack_id = stack_id;
	h->kernel = kernel;
	index_stack(t, t->nstacks++);
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

/* The age at now of a block allocated at time_ns (0: not known). */
static double age_of(__u64 time_ns, double now)
{
	return time_ns ? now - time_ns / 1e9 : 0;
}

/* Add each stack's outstanding bytes to its curve and judge it. */
static void judge_stacks(struct target *t, const struct stack_stat *first, size_t n, bool kernel,
			 double now, double at, double dt, struct stack_report *all)
{
	for (size_t i = 0; i < n; i++) {
		struct stack_history *h;
		double prev;

		all[i].stack_id = first[i].stack_id;
		all[i].out_bytes = first[i].out_bytes;
		all[i].out_allocs = first[i].out_allocs;
		all[i].c = first[i].c;
		all[i].oldest_age_s = age_of(first[i].oldest_ns, now);
		all[i].kernel = kernel;
		/* A stack that has never held a block has a flat zero curve: nothing
		 * to judge or keep until it holds one (its curve then starts with
		 * that zero, as a new stack's does). Most stacks are such churn. */
		if (!first[i].out_bytes && !find_history(t, first[i].stack_id, kernel))
			continue;
		h = history_of(t, first[i].stack_id, kernel, at - dt);
		prev = h->curve.n ? h->curve.p[h->curve.n - 1].last : 0;
		/* After its exit a process's stacks can no longer change: their last
		 * report's judgement stands. */
		if (!t->retired || h->curve.n <= 2) {
			curve_add(&h->curve, at, (double)first[i].out_bytes);
			/* Most stacks hold what they held: judged again only if not settled. */
			if (prev != (double)first[i].out_bytes || !verdict_settled(&h->verdict))
				curve_judge(&h->curve, &h->verdict);
		}
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
	if (x->out_bytes != y->out_bytes)
		return x->out_bytes > y->out_bytes ? -1 : 1;
	if (x->out_allocs != y->out_allocs)
		return x->out_allocs > y->out_allocs ? -1 : 1;
	return x->stack_id < y->stack_id ? -1 : x->stack_id > y->stack_id;
}

/* A kernel stack starts in the tracer and the allocator; a report starts
 * at the function that asked for memory. */
static void skip_kernel_allocator(struct stack_report *s)
{
	int skip = 0;

	while (skip < s->nframes - 1 && kallsyms_is_allocator(s->frames[skip].symbol))
		skip++;
	memmove(s->frames, s->frames + skip, (s->nframes - skip) * sizeof(*s->frames));
	s->nframes -= skip;
}

/* A user stack's frames, with the functions inlined at each as frames of
 * their own. */
static void add_user_frames(struct target *t, const __u64 *ips, struct stack_report *s)
{
	int n = 0;

	s->frames = NULL;
	for (int i = 0; i < s->nframes; i++) {
		struct frame *at;
		int k = symbolizer_frames(&t->sym, ips[i], &at);

		s->frames = xrealloc(s->frames, (n + k) * sizeof(*s->frames));
		memcpy(s->frames + n, at, k * sizeof(*at));
		n += k;
		free(at);
	}
	s->nframes = n;
}

static void add_frames(struct target_set *ts, struct target *t, struct stack_report *s)
{
	__u64 ips[MAX_FRAMES];

	if (t->retired)
		s->nframes = retired_frames(t->retired, s->stack_id, s->kernel, ips, &s->how);
	else
		s->nframes = snapshot_frames(s->kernel ? &ts->kernel : &ts->heap, s->stack_id, ips,
					     &s->how);
	if (s->kernel) {
		s->frames = xcalloc(s->nframes, sizeof(*s->frames));
		for (int i = 0; i < s->nframes; i++)
			kallsyms_lookup(&ts->ksyms, ips[i], &s->frames[i]);
		skip_kernel_allocator(s);
		return;
	}
	add_user_frames(t, ips, s);
}

/* What the heap holds beyond its stacks: blocks recorded without one. */
static void count_no_stack(struct proc_report *p)
{
	long long bytes = outstanding_bytes(&p->heap), allocs = outstanding_allocs(&p->heap);

	bytes -= p->stacks_rest.bytes;
	allocs -= p->stacks_rest.allocs;
	for (int i = 0; i < p->nshown; i++) {
		if (p->stacks[i].kernel)
			continue;
		bytes -= (long long)p->stacks[i].out_bytes;
		allocs -= (long long)p->stacks[i].out_allocs;
	}
	p->no_stack.bytes = bytes > 0 ? bytes : 0;
	p->no_stack.allocs = allocs > 0 ? allocs : 0;
}

/* The heap held by the user stacks beyond the first nshown. */
static void count_rest(struct proc_report *p, const struct stack_report *s)
{
	if (s->kernel || !s->out_allocs)
		return;
	p->stacks_rest.stacks++;
	p->stacks_rest.bytes += (long long)s->out_bytes;
	p->stacks_rest.allocs += (long long)s->out_allocs;
}

/*
 * The stacks of a process, user and kernel, judged and ranked. The first
 * ro->top that hold something are the report's; with ro->keep_all every
 * other one follows them (those that hold nothing too: they count in the
 * totals of a profile), else they are only counted in stacks_rest.
 */
static void build_stacks(struct target_set *ts, struct target *t, const struct snapshot snap[2],
			 const struct report_options *ro, double now, double dt,
			 struct proc_report *p)
{
	size_t nheap, nkernel, n;
	const struct stack_stat *heap = snapshot_stacks_of(&snap[0], (__u32)t->pid, &nheap);
	const struct stack_stat *kernel = snapshot_stacks_of(&snap[1], (__u32)t->pid, &nkernel);
	struct stack_report *all;
	bool *shown;

	if (t->retired) {
		heap = t->retired->stacks[0], nheap = t->retired->nstacks[0];
		kernel = t->retired->stacks[1], nkernel = t->retired->nstacks[1];
	} else if (t->unprobing) {
		nheap = 0;
	}
	n = nheap + nkernel;
	all = xcalloc(n, sizeof(*all));
	judge_stacks(t, heap, nheap, false, now, now - ts->start_time, dt, all);
	judge_stacks(t, kernel, nkernel, true, now, now - ts->start_time, dt, all + nheap);
	qsort(all, n, sizeof(*all), by_suspicion);
	p->stacks = xcalloc(ro->keep_all ? n : (size_t)ro->top, sizeof(*p->stacks));
	shown = xcalloc(n, sizeof(*shown));
	for (size_t i = 0; i < n; i++) { /* pages mode's pages without a stack */
		if (all[i].stack_id != PAGES_NO_STACK || all[i].kernel)
			continue;
		p->no_stack.bytes += (long long)all[i].out_bytes;
		p->no_stack.allocs += (long long)all[i].out_allocs;
		shown[i] = true;
	}
	for (size_t i = 0; i < n && p->nstacks < ro->top; i++) {
		if (all[i].out_allocs && !shown[i]) /* a suspect may have freed it all */
			p->stacks[p->nstacks++] = all[i], shown[i] = true;
	}
	p->nshown = p->nstacks;
	for (size_t i = 0; i < n; i++) {
		if (shown[i])
			continue;
		count_rest(p, &all[i]);
		if (ro->keep_all)
			p->stacks[p->nstacks++] = all[i];
	}
	free(shown);
	free(all);
	if (!t->pages) /* in pages mode, its own row: the rows add up as read */
		count_no_stack(p);
}

/*
 * The last scan's kinds on each stack. Lost blocks on a growing stack, or in
 * a growing process, are a leak proven: no curve needs to wait for more.
 */
static void add_scan(const struct target *t, struct proc_report *p)
{
	bool proven = p->verdict.state == VERDICT_GROWING && leaked_bytes(&t->scan.sum.total);

	p->scanned = true;
	p->scan = t->scan.sum;
	for (int i = 0; i < p->nstacks; i++) {
		struct stack_report *s = &p->stacks[i];
		const struct reach_counts *k;

		if (s->kernel || !(k = scan_stack_kinds(&t->scan, s->stack_id)))
			continue;
		s->scanned = true;
		s->reach = *k;
		proven |= s->suspect && leaked_bytes(k);
	}
	if (proven)
		p->verdict.state = VERDICT_LEAK;
}

static void build_proc(struct target_set *ts, struct target *t, const struct snapshot snap[2],
		       const struct report_options *ro, double now, struct proc_report *p)
{
	double dt = now - t->prev_time > 1e-3 ? now - t->prev_time : 1e-3;
	long long mem;

	memset(p, 0, sizeof(*p));
	p->pid = t->pid;
	snprintf(p->comm, sizeof(p->comm), "%s", t->comm);
	p->alive = t->alive;
	p->rss_bytes = t->rss_bytes;
	p->anon_bytes = t->anon_bytes;
	p->watched = t->watched;
	p->pages = t->pages;
	p->probed = !t->pages && (!t->watched || t->probed);
	if (t->retired)
		p->heap = t->retired->heap.c;
	else if (t->unprobing) /* not yet forgotten */
		p->heap = (struct counts){0};
	else if (!snapshot_counts(&snap[0], (__u32)t->pid, &p->heap))
		p->heap = snapshot_proc(&ts->heap, (__u32)t->pid, VIEW_LIVE).c;
	p->has_kernel = targets_kernel(ts);
	p->kernel = t->retired ? t->retired->kernel.c
			       : snapshot_proc(&ts->kernel, (__u32)t->pid, VIEW_LIVE).c;
	p->verdict = t->verdict;
	mem = (target_on_rss(t) ? (long long)t->anon_bytes : outstanding_bytes(&p->heap)) +
	      outstanding_bytes(&p->kernel);
	p->growth_bps = growth_of(&t->verdict, (double)mem, (double)t->prev_mem, dt);
	p->kernel_growth_bps = growth_of(&t->kernel_verdict, (double)outstanding_bytes(&p->kernel),
					 (double)t->prev_kernel, dt);
	build_stacks(ts, t, snap, ro, now, dt, p);
	if (t->scanned)
		add_scan(t, p);
	t->prev_mem = mem;
	t->prev_kernel = outstanding_bytes(&p->kernel);
	t->prev_time = now;
}

/* System-wide: a process that ended before any sample saw it (its totals
 * left apart by BPF, ended) is a target too, for its last report. Not read
 * from /proc: the pid may be another's by now. */
static void add_ended(struct target_set *ts, int fd)
{
	__u32 key, next, *prev = NULL;

	while (fd >= 0 && bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (!retiring(ts, (pid_t)key) && !targets_find(ts, (pid_t)key))
			new_target(ts, (pid_t)key)->alive = false;
	}
}

static void add_every_owner(struct target_set *ts)
{
	if (!ts->every_process)
		return;
	add_ended(ts, ts->heap.ended);
	add_owners(ts, ts->heap.procs);
	if (targets_kernel(ts))
		add_owners(ts, ts->kernel.procs);
}

/* Processes seen to have exited leave the maps at once, their figures kept
 * for their last report. */
static void retire_exited(struct target_set *ts)
{
	const struct heap_maps *maps[2] = {&ts->heap, &ts->kernel};
	__u32 *tgids = xcalloc(ts->n + 1, sizeof(*tgids));
	struct retired **out = xcalloc(ts->n + 1, sizeof(*out));
	size_t n = 0, k = 0;
	int err;

	for (int i = 0; i < ts->n; i++)
		if (!ts->t[i].alive && !ts->t[i].retired && ts->t[i].pid != KERNEL_OWNER)
			tgids[n++] = (__u32)ts->t[i].pid;
	if (n && (err = retire_take(maps, tgids, n, ts->older_ns, out)))
		warnx_("cannot read every live block of exited processes: %s; their stacks "
		       "leave them out",
		       strerror(-err));
	for (int i = 0; i < ts->n && k < n; i++) {
		struct target *t = &ts->t[i];

		if (t->pid != (pid_t)tgids[k])
			continue;
		t->retired = out[k++];
		name_from_kernel(t, &t->retired->heap, &t->retired->kernel);
	}
	free(tgids);
	free(out);
}

void targets_sample(struct target_set *ts)
{
	double at = monotonic_s() - ts->start_time;

	add_every_owner(ts);
	retire_exited(ts);
	ts->samples++;
	for (int i = 0; i < ts->n; i++) {
		struct target *t = &ts->t[i];
		struct counts heap, kernel;

		if (!t->alive && (!t->retired || t->last_point))
			continue;
		if (!t->alive) {
			heap = t->retired->heap.c;
			kernel = t->retired->kernel.c;
			t->last_point = true;
		} else {
			if (t->pid != KERNEL_OWNER)
				read_rss(t);
			heap = snapshot_proc(&ts->heap, (__u32)t->pid, VIEW_LIVE).c;
			kernel = snapshot_proc(&ts->kernel, (__u32)t->pid, VIEW_LIVE).c;
		}
		t->sampled = ts->samples;
		t->heap_bytes = outstanding_bytes(&heap);
		t->kernel_bytes = outstanding_bytes(&kernel);
		if (targets_kernel(ts)) {
			curve_add(&t->kernel, at, (double)t->kernel_bytes);
			curve_judge(&t->kernel, &t->kernel_verdict);
		}
		if (target_on_rss(t) && !t->mem.n) { /* growth starts from the RSS it had */
			t->prev_mem = (long long)t->anon_bytes;
			t->prev_time = at + ts->start_time;
		}
		curve_add(&t->mem, at,
			  (double)(target_on_rss(t) ? (long long)t->anon_bytes : t->heap_bytes) +
			      (double)t->kernel_bytes);
		curve_judge(&t->mem, &t->verdict);
	}
}

static void sweep(struct target_set *ts, const struct heap_maps *m, const char *what)
{
	size_t kept, reclaimed;
	int err = snapshot_sweep_stacks(m, &kept, &reclaimed);

	if (err)
		warnx_("cannot read the %s maps to reclaim stacks: %s", what, strerror(-err));
	ts->stack_entries += kept;
	ts->stacks_reclaimed += reclaimed;
}

void targets_sweep_stacks(struct target_set *ts)
{
	ts->stack_entries = 0;
	sweep(ts, &ts->heap, "user heap's");
	if (targets_kernel(ts))
		sweep(ts, &ts->kernel, "kernel's");
}

/* Drop the stacks' histories (the user heap's only, if heap_only): their
 * counts are gone. */
static void free_stacks(struct target *t, bool heap_only)
{
	size_t kept = 0;

	for (size_t k = 0; k < t->nstacks; k++) {
		if (heap_only && t->stacks[k].kernel)
			t->stacks[kept++] = t->stacks[k];
		else
			curve_free(&t->stacks[k].curve);
	}
	t->nstacks = kept;
	if (kept) {
		memset(t->stack_index, 0, t->index_slots * sizeof(*t->stack_index));
		for (size_t k = 0; k < kept; k++)
			index_stack(t, k);
		return;
	}
	free(t->stacks);
	free(t->stack_index);
	t->stacks = NULL;
	t->stack_index = NULL;
	t->nstacks = t->stacks_cap = t->index_slots = 0;
}

/* The probes come off in the background (the sampling goes on); its heap
 * records go once they are off (targets_forget_unprobed), not before: a
 * probe still running would record anew. Meanwhile its heap is not reported. */
void target_unprobe(struct target *t)
{
	t->unprobing = probes_detach_later(&t->probes, false);
	free_stacks(t, true); /* its kernel stacks are still counted */
	t->probed = false;
	t->heap_bytes = 0;
}

void targets_forget_unprobed(struct target_set *ts)
{
	__u32 *pids = xcalloc(ts->n + 1, sizeof(*pids));
	size_t n = 0;

	for (int i = 0; i < ts->n; i++) {
		struct target *t = &ts->t[i];

		if (!t->unprobing || !probes_done(t->unprobing))
			continue;
		t->unprobing = 0;
		if (t->alive) /* an exited one's go when it is retired */
			pids[n++] = (__u32)t->pid;
	}
	snapshot_forget(&ts->heap, pids, n, false, NULL); /* one walk for all */
	free(pids);
}

static void target_free(struct target *t)
{
	retired_free(t->retired);
	symbolizer_free(&t->sym);
	probes_detach_later(&t->probes, !t->alive);
	free_stacks(t, false);
	curve_free(&t->mem);
	curve_free(&t->kernel);
	scan_result_free(&t->scan);
	if (t->pidfd >= 0)
		close(t->pidfd);
}

/* A process that has exited and had its last report leaves nothing behind
 * (its map entries went when it was retired). */
static void forget_gone(struct target_set *ts)
{
	int kept = 0;

	for (int i = 0; i < ts->n; i++) {
		if (ts->t[i].gone)
			target_free(&ts->t[i]);
		else
			ts->t[kept++] = ts->t[i];
	}
	ts->n = kept;
}

/* The processes a report reads the stacks of, sorted; their number in *n. */
static __u32 *listed_tgids(const struct target_set *ts, size_t *n)
{
	__u32 *tgids = xcalloc(ts->n + 1, sizeof(*tgids));

	*n = 0;
	for (int i = 0; i < ts->n; i++)
		if (!ts->t[i].gone)
			tgids[(*n)++] = (__u32)ts->t[i].pid;
	qsort(tgids, *n, sizeof(*tgids), cmp_u32);
	return tgids;
}

/* Leaks first, then growing, steady and warming up; within each, the fastest growth. */
static int by_concern(const void *a, const void *b)
{
	const struct proc_report *x = a, *y = b;
	long long mx = outstanding_bytes(&x->heap) + outstanding_bytes(&x->kernel);
	long long my = outstanding_bytes(&y->heap) + outstanding_bytes(&y->kernel);

	if (x->verdict.state != y->verdict.state)
		return (int)y->verdict.state - (int)x->verdict.state;
	if (x->growth_bps != y->growth_bps)
		return x->growth_bps > y->growth_bps ? -1 : 1;
	return my > mx ? 1 : my < mx ? -1 : 0;
}

/* The first max_procs processes are shown in full, their stacks symbolized;
 * the rest keep only the headline and the sums. */
static void symbolize_top(struct target_set *ts, struct report *r, int max_procs)
{
	r->nfull = r->nprocs < max_procs ? r->nprocs : max_procs;
	for (int i = 0; i < r->nprocs; i++) {
		struct proc_report *p = &r->procs[i];
		struct target *t = target_of(ts, p);

		if (i >= r->nfull) { /* its stacks are counted, not listed */
			for (int k = 0; k < p->nshown; k++)
				count_rest(p, &p->stacks[k]);
			p->nstacks = p->nshown = 0;
		}
		for (int k = 0; k < p->nstacks; k++)
			add_frames(ts, t, &p->stacks[k]);
	}
}

/* A listed stack whose oldest block a walk of the live blocks is to find:
 * the search's figures (first: the search is given pointers to them), and
 * the report's. */
struct wanted_stack {
	struct stack_stat st;
	struct stack_report *s;
};

/* Stacks to find the oldest block of, with a walk of one object's live blocks. */
struct oldest_wanted {
	struct stack_stat **st; /* each the st of a struct wanted_stack */
	size_t n;
};

/* The oldest block of a listed stack: BPF's count knows it until that block
 * is freed; then the one a walk found last, while that lives. */
static bool oldest_known(struct target_set *ts, struct target *t, struct stack_report *s,
			 double now)
{
	const struct heap_maps *m = s->kernel ? &ts->kernel : &ts->heap;
	struct stack_history *h = find_history(t, s->stack_id, s->kernel);

	if (!s->out_allocs || s->oldest_age_s)
		return true;
	if (!h || !h->oldest_ns || !snapshot_block_lives(m, &h->oldest, s->stack_id, h->oldest_ns))
		return false;
	s->oldest_age_s = age_of(h->oldest_ns, now);
	return true;
}

static void want_oldest(struct oldest_wanted *w, pid_t pid, struct stack_report *s)
{
	struct wanted_stack *ws = xcalloc(1, sizeof(*ws));

	ws->st.tgid = (__u32)pid;
	ws->st.stack_id = s->stack_id;
	ws->st.out_allocs = s->out_allocs;
	ws->s = s;
	w->st = xrealloc(w->st, (w->n + 1) * sizeof(*w->st));
	w->st[w->n++] = &ws->st;
}

static void find_oldest(struct target_set *ts, const struct snapshot *snap, bool kernel,
			struct oldest_wanted *w, double now)
{
	int err;

	if (!w->n)
		return;
	err = snapshot_find_oldest(kernel ? &ts->kernel : &ts->heap, snap, w->st, w->n);
	if (err)
		warnx_("cannot read every live block: %s; some stacks' oldest age is left at 0",
		       strerror(-err));
	for (size_t i = 0; i < w->n; i++) {
		struct wanted_stack *ws = (struct wanted_stack *)w->st[i];
		struct target *t = targets_find(ts, (pid_t)ws->st.tgid);
		struct stack_history *h = t ? find_history(t, ws->st.stack_id, kernel) : NULL;

		ws->s->oldest_age_s = age_of(ws->st.oldest_ns, now);
		if (h) {
			h->oldest = ws->st.oldest;
			h->oldest_ns = ws->st.oldest_ns;
		}
		free(ws);
	}
	free(w->st);
}

/* The listed stacks' oldest blocks: one walk of the live blocks, only when
 * one is not known otherwise. */
static void add_oldest(struct target_set *ts, struct report *r, const struct snapshot snap[2],
		       int max_procs, double now)
{
	struct oldest_wanted w[2] = {{0}};

	for (int i = 0; i < r->nprocs && i < max_procs; i++) {
		struct proc_report *p = &r->procs[i];
		struct target *t = target_of(ts, p);

		for (int k = 0; k < p->nshown && !t->retired; k++)
			if (!oldest_known(ts, t, &p->stacks[k], now))
				want_oldest(&w[p->stacks[k].kernel], t->pid, &p->stacks[k]);
	}
	find_oldest(ts, &snap[0], false, &w[0], now);
	find_oldest(ts, &snap[1], true, &w[1], now);
}

static void add_drops(struct drops *sum, const struct drops *d)
{
	sum->events += d->events;
	sum->allocs_map_full += d->allocs_map_full;
	sum->stacks += d->stacks;
	sum->stacks_map_failed += d->stacks_map_failed;
	sum->stack_counts_full += d->stack_counts_full;
	sum->procs_map_full += d->procs_map_full;
	sum->lifecycle_map_full += d->lifecycle_map_full;
	sum->calls_too_deep += d->calls_too_deep;
	sum->pages_split += d->pages_split;
	sum->pages_moved += d->pages_moved;
}

void targets_drops(const struct target_set *ts, struct drops *sum)
{
	memset(sum, 0, sizeof(*sum));
	add_drops(sum, ts->heap.drops);
	if (targets_kernel(ts))
		add_drops(sum, ts->kernel.drops);
}

struct curve_report *targets_curves(const struct target_set *ts, int *n)
{
	struct curve_report *c = xcalloc(ts->n + 1, sizeof(*c));

	for (int i = 0; i < ts->n; i++) {
		const struct target *t = &ts->t[i];

		c[i] = (struct curve_report){.pid = t->pid,
					     .comm = t->comm,
					     .mem = &t->mem,
					     .verdict = &t->verdict,
					     .heap_bytes = t->heap_bytes,
					     .rss_bytes = t->rss_bytes,
					     .has_kernel = targets_kernel(ts),
					     .kernel_bytes = t->kernel_bytes,
					     .in_last_sample = t->sampled == ts->samples};
	}
	*n = ts->n;
	return c;
}

void targets_report(struct target_set *ts, const struct report_options *ro, struct report *r)
{
	double now = monotonic_s();
	struct snapshot snap[2];
	size_t ntgids;
	__u32 *tgids;
	int err;

	add_every_owner(ts);
	retire_exited(ts);
	tgids = listed_tgids(ts, &ntgids);
	if ((err = snapshot_read(&ts->heap, tgids, ntgids, ro->older_ns, VIEW_LIVE, &snap[0])) ||
	    (err = snapshot_read(&ts->kernel, tgids, ntgids, ro->older_ns, VIEW_LIVE, &snap[1])))
		warnx_("cannot read the maps: %s; this report's stacks leave some blocks out",
		       strerror(-err));
	free(tgids);
	memset(&r->drops, 0, sizeof(r->drops));
	add_drops(&r->drops, &snap[0].drops);
	add_drops(&r->drops, &snap[1].drops);
	r->nested_calls = ts->heap.nested_calls ? *ts->heap.nested_calls : 0;
	r->stack_entries = ts->stack_entries;
	r->stacks_reclaimed = ts->stacks_reclaimed;
	r->elapsed_s = now - ts->start_time;
	r->wall = time(NULL);
	r->procs = xcalloc(ts->n, sizeof(*r->procs));
	r->nprocs = 0;
	for (int i = 0; i < ts->n; i++) {
		struct target *t = &ts->t[i];

		if (t->gone)
			continue;
		build_proc(ts, t, snap, ro, now, &r->procs[r->nprocs++]);
		t->gone = !t->alive && !r->final && !t->kept;
	}
	qsort(r->procs, r->nprocs, sizeof(*r->procs), by_concern);
	add_oldest(ts, r, snap, ro->max_procs, now);
	symbolize_top(ts, r, ro->max_procs);
	snapshot_free(&snap[0]);
	snapshot_free(&snap[1]);
	forget_gone(ts);
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
	kallsyms_free(&ts->ksyms);
	heap_maps_close(&ts->heap);
	heap_maps_close(&ts->kernel);
	memset(ts, 0, sizeof(*ts));
}

void targets_init(struct target_set *ts, const struct heap_maps *heap)
{
	memset(ts, 0, sizeof(*ts));
	ts->heap = *heap;
	ts->kernel = (struct heap_maps){.blocks = -1,
					.block_op = -1,
					.procs = -1,
					.proc_rows = -1,
					.stack_counts = -1,
					.stack_rows = -1,
					.stacks = -1,
					.ended = -1};
}
