#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "elf_file.h"
#include "memleak.h"
#include "memleak.skel.h"
#include "probe_site.h"
#include "probes.h"
#include "ret_sites.h"
#include "util.h"

/* How an entry point's arguments are read; each has its own BPF program. */
enum entry {
	E_MALLOC, /* (size) */
	E_PVALLOC,
	E_CALLOC,
	E_MEMALIGN, /* (align, size) */
	E_REALLOC,
	E_REALLOCARRAY,
	E_POSIX_MEMALIGN,
	E_FREE, /* (ptr); no return probe */
	E_NEW,	/* operator new: an allocation of its own, or a wrapper (see below) */
};

static const struct alloc_fn {
	const char *name;
	enum entry entry;
} alloc_fns[] = {
    {"malloc", E_MALLOC},
    {"calloc", E_CALLOC},
    {"realloc", E_REALLOC},
    {"reallocarray", E_REALLOCARRAY},
    {"posix_memalign", E_POSIX_MEMALIGN},
    {"aligned_alloc", E_MEMALIGN},
    {"memalign", E_MEMALIGN},
    {"valloc", E_MALLOC},
    {"pvalloc", E_PVALLOC},
    {"free", E_FREE},
    /* C++ operator new and new[]: plain, nothrow, aligned, aligned nothrow. */
    {"_Znwm", E_NEW},
    {"_Znam", E_NEW},
    {"_ZnwmRKSt9nothrow_t", E_NEW},
    {"_ZnamRKSt9nothrow_t", E_NEW},
    {"_ZnwmSt11align_val_t", E_NEW},
    {"_ZnamSt11align_val_t", E_NEW},
    {"_ZnwmSt11align_val_tRKSt9nothrow_t", E_NEW},
    {"_ZnamSt11align_val_tRKSt9nothrow_t", E_NEW},
    /* operator delete and delete[]: plain, sized, aligned, nothrow. */
    {"_ZdlPv", E_FREE},
    {"_ZdaPv", E_FREE},
    {"_ZdlPvm", E_FREE},
    {"_ZdaPvm", E_FREE},
    {"_ZdlPvSt11align_val_t", E_FREE},
    {"_ZdaPvSt11align_val_t", E_FREE},
    {"_ZdlPvmSt11align_val_t", E_FREE},
    {"_ZdaPvmSt11align_val_t", E_FREE},
    {"_ZdlPvRKSt9nothrow_t", E_FREE},
    {"_ZdaPvRKSt9nothrow_t", E_FREE},
    {"_ZdlPvSt11align_val_tRKSt9nothrow_t", E_FREE},
    {"_ZdaPvSt11align_val_tRKSt9nothrow_t", E_FREE},
};

#define NFUNCS ARRAY_SIZE(alloc_fns)

/* uprobe_multi links (Linux 6.6), which libbpf 1.1 and its headers predate:
 * BPF_LINK_CREATE's attributes for them. */
#define UPROBE_MULTI	    48 /* BPF_TRACE_UPROBE_MULTI */
#define UPROBE_MULTI_RETURN 1u /* BPF_F_UPROBE_MULTI_RETURN */

union multi_attr {
	struct {
		__u32 prog_fd, target_fd, attach_type, flags;
		__u64 path, offsets, ref_ctr_offsets, cookies;
		__u32 cnt, flags_multi, pid;
	} link;
	union bpf_attr all; /* its size */
};

/* How many integer arguments an entry program reads. */
static int entry_args(enum entry e)
{
	switch (e) {
	case E_CALLOC:
	case E_MEMALIGN:
	case E_REALLOC:
		return 2;
	case E_REALLOCARRAY:
	case E_POSIX_MEMALIGN:
		return 3;
	default:
		return 1;
	}
}

static struct bpf_program *entry_prog(struct memleak_bpf *skel, enum entry e)
{
	switch (e) {
	case E_NEW:
	case E_MALLOC:
		return skel->progs.malloc_enter;
	case E_PVALLOC:
		return skel->progs.pvalloc_enter;
	case E_CALLOC:
		return skel->progs.calloc_enter;
	case E_MEMALIGN:
		return skel->progs.memalign_enter;
	case E_REALLOC:
		return skel->progs.realloc_enter;
	case E_REALLOCARRAY:
		return skel->progs.reallocarray_enter;
	case E_POSIX_MEMALIGN:
		return skel->progs.posix_memalign_enter;
	case E_FREE:
		return skel->progs.free_enter;
	}
	return NULL;
}

/*
 * The probes of one object are planned first, then attached as one
 * uprobe_multi link per program: one link costs about as much to take
 * down as one single probe (a grace period), where a perf-event probe per
 * site cost 0.1 s each.
 */
struct site {
	struct bpf_program *prog;
	bool ret;	/* a return probe */
	bool call_end; /* it sees calls end (a return probe, a ret instruction's) */
	uint64_t offset, cookie;
};

struct plan {
	struct site s[NFUNCS * 2 + MAX_RET_SITES * 4];
	int n;
};

/* A probe at site (file offset) in function fn; the cookie tells the
 * program the function's size and how far into it the site is. */
static void plan_site(struct plan *pl, struct bpf_program *prog, bool ret, bool call_end,
		      const struct elf_func *fn, uint64_t site)
{
	if (pl->n < (int)ARRAY_SIZE(pl->s))
		pl->s[pl->n++] = (struct site){.prog = prog, .ret = ret, .call_end = call_end,
					       .offset = site,
					       .cookie = fn->size | (site - fn->offset) << 32};
}

/* Where a call ends, seen by alloc_end: a return probe at the entry's site,
 * or an entry probe on a ret instruction. */
static void plan_end(struct plan *pl, struct memleak_bpf *skel, bool at_ret, uint64_t site)
{
	if (pl->n < (int)ARRAY_SIZE(pl->s))
		pl->s[pl->n++] = (struct site){.prog = skel->progs.alloc_end, .ret = !at_ret,
					       .call_end = true, .offset = site,
					       .cookie = at_ret ? END_AT_RET : 0};
}

/* The functions path defines, with aliases of one address kept once. */
static int resolve(const char *path, struct elf_func *funcs)
{
	const char *names[NFUNCS];
	int found;

	for (size_t i = 0; i < NFUNCS; i++)
		names[i] = alloc_fns[i].name;
	found = elf_funcs(path, names, NFUNCS, funcs);
	for (size_t i = 0; i < NFUNCS; i++)
		for (size_t k = 0; k < i && funcs[i].offset; k++)
			if (funcs[k].offset == funcs[i].offset)
				funcs[i].offset = 0, found--;
	return found;
}

/*
 * operator new may throw, and an exception cannot unwind through the
 * kernel's return-probe trampoline: new never gets a return probe. One that
 * calls an allocator of another object (libstdc++'s calls malloc) is a
 * wrapper, its blocks counted at the malloc inside it. An allocator's own
 * (jemalloc's, tcmalloc's) is watched at its ret instructions instead.
 */
static bool is_wrapper(const struct elf_func *funcs, enum entry e)
{
	return e == E_NEW && !funcs[0].offset; /* alloc_fns[0] is malloc */
}

/* The ret instructions of an allocator's own new, each probed once: how
 * many it has, -1 if they cannot be found. */
static int plan_ret_sites(struct memleak_bpf *skel, const char *path, const struct elf_func *fn,
			  struct plan *pl, uint64_t *done, int *ndone)
{
	uint64_t sites[MAX_RET_SITES];
	int n = ret_sites(path, fn->offset, fn->size, sites, MAX_RET_SITES);

	for (int i = 0; i < n; i++) {
		bool seen = false;

		for (int k = 0; k < *ndone; k++)
			seen |= done[k] == sites[i];
		if (seen || *ndone == MAX_RET_SITES * 4)
			continue;
		done[(*ndone)++] = sites[i];
		plan_end(pl, skel, true, sites[i]);
	}
	return n;
}

/* How each allocating function's result is seen: a return probe, or probes
 * on its ret instructions (operator new of an allocator); wrappers and frees
 * need neither. */
static void plan_returns(struct memleak_bpf *skel, const char *path, const struct elf_func *funcs,
			 const uint64_t *sites, struct plan *pl)
{
	uint64_t done[MAX_RET_SITES * 4];
	int ndone = 0;

	for (size_t i = 0; i < NFUNCS; i++) {
		enum entry e = alloc_fns[i].entry;
		int n = 0;

		if (!funcs[i].offset || e == E_FREE || is_wrapper(funcs, e))
			continue;
		/* A nothrow new cannot throw: a return probe is safe on it. */
		if (e == E_NEW && !strstr(alloc_fns[i].name, "nothrow"))
			n = plan_ret_sites(skel, path, &funcs[i], pl, done, &ndone);
		if (n == -1)
			warnx_("%s in %s: its returns cannot be found; it gets a return probe, "
			       "and a new that throws there would end the program",
			       alloc_fns[i].name, path);
		/* At the entry probe's site: one trap for both. */
		if (n <= 0)
			plan_end(pl, skel, false, sites[i]);
	}
}

/* Returns first (and off last): an entry seen without its return would
 * leave a call in flight that never returns. */
static void plan_object(struct memleak_bpf *skel, const char *path, const struct elf_func *funcs,
			struct plan *pl, int *nfuncs)
{
	uint64_t sites[NFUNCS];

	for (size_t i = 0; i < NFUNCS; i++)
		sites[i] = funcs[i].offset ? probe_site(path, funcs[i].offset, funcs[i].size,
							entry_args(alloc_fns[i].entry))
					   : 0;
	plan_returns(skel, path, funcs, sites, pl);
	for (size_t i = 0; i < NFUNCS; i++) {
		struct bpf_program *entry = is_wrapper(funcs, alloc_fns[i].entry)
						? skel->progs.new_wrapper_enter
						: entry_prog(skel, alloc_fns[i].entry);

		if (!funcs[i].offset)
			continue;
		plan_site(pl, entry, false, false, &funcs[i], sites[i]);
		(*nfuncs)++;
	}
}

/* The sites of the plan that prog runs at, as one link; its fd or -errno. */
static int multi_link(const struct plan *pl, int first, const char *path, pid_t pid)
{
	unsigned long offsets[ARRAY_SIZE(pl->s)];
	__u64 cookies[ARRAY_SIZE(pl->s)];
	struct bpf_program *prog = pl->s[first].prog;
	union multi_attr a;
	int n = 0, fd;

	for (int i = first; i < pl->n; i++)
		if (pl->s[i].prog == prog && pl->s[i].ret == pl->s[first].ret) {
			offsets[n] = pl->s[i].offset;
			cookies[n++] = pl->s[i].cookie;
		}
	memset(&a, 0, sizeof(a));
	a.link.prog_fd = (__u32)bpf_program__fd(prog);
	a.link.attach_type = UPROBE_MULTI;
	a.link.path = (unsigned long)path;
	a.link.offsets = (unsigned long)offsets;
	a.link.cookies = (unsigned long)cookies;
	a.link.cnt = (__u32)n;
	a.link.flags_multi = pl->s[first].ret ? UPROBE_MULTI_RETURN : 0;
	a.link.pid = pid > 0 ? (__u32)pid : 0;
	fd = (int)syscall(SYS_bpf, BPF_LINK_CREATE, &a, sizeof(a));
	return fd < 0 ? -errno : fd;
}

static int attach_plan(const struct plan *pl, const char *path, pid_t pid, struct probes *p,
		       char *err, size_t errlen)
{
	for (int i = 0; i < pl->n; i++) {
		bool first = true;
		int fd;

		for (int k = 0; k < i; k++)
			first &= pl->s[k].prog != pl->s[i].prog || pl->s[k].ret != pl->s[i].ret;
		if (!first)
			continue;
		if ((fd = multi_link(pl, i, path, pid)) < 0) {
			snprintf(err, errlen, "cannot attach uprobes to %s (%s): %s", path,
				 bpf_program__name(pl->s[i].prog), strerror(-fd));
			return -1;
		}
		p->fds = xrealloc(p->fds, (p->nlinks + 1) * sizeof(*p->fds));
		p->rets = xrealloc(p->rets, (p->nlinks + 1) * sizeof(*p->rets));
		p->fds[p->nlinks] = fd;
		p->rets[p->nlinks++] = pl->s[i].call_end;
	}
	return 0;
}

int probes_attach(struct memleak_bpf *skel, const struct objlist *objs, pid_t pid, struct probes *p,
		  char *err, size_t errlen)
{
	struct elf_func funcs[NFUNCS];
	int objects = 0;

	for (int i = 0; i < objs->n; i++) {
		struct plan pl = {0};

		if (resolve(objs->paths[i], funcs) <= 0)
			continue;
		plan_object(skel, objs->paths[i], funcs, &pl, &p->nfuncs);
		if (attach_plan(&pl, objs->paths[i], pid, p, err, errlen))
			return -1;
		objects++;
	}
	return objects;
}

/* A thread that never takes a signal of the tracer's; false if none could
 * be started. */
static bool start_thread(pthread_t *th, void *(*fn)(void *), void *arg, bool detached)
{
	pthread_attr_t attr;
	sigset_t all, was;
	bool started;

	pthread_attr_init(&attr);
	if (detached)
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &was);
	started = pthread_create(th, &attr, fn, arg) == 0;
	pthread_sigmask(SIG_SETMASK, &was, NULL);
	pthread_attr_destroy(&attr);
	return started;
}

static void *close_fd(void *fd)
{
	close((int)(long)fd);
	return NULL;
}

enum links { ENTRIES = 1, RETURNS = 2 };

/* Closing a link waits out a grace period: all of the kinds asked at once. */
static void close_all(const struct probes *p, enum links which)
{
	pthread_t *th = xcalloc((size_t)p->nlinks, sizeof(*th));
	bool *started = xcalloc((size_t)p->nlinks, sizeof(*started));

	for (int i = 0; i < p->nlinks; i++)
		if ((which & (p->rets[i] ? RETURNS : ENTRIES)) &&
		    !(started[i] = start_thread(&th[i], close_fd, (void *)(long)p->fds[i], false)))
			close(p->fds[i]);
	for (int i = 0; i < p->nlinks; i++)
		if (started[i])
			pthread_join(th[i], NULL);
	free(started);
	free(th);
}

/* Entry probes off first (see plan_object), unless the process is gone. */
static void detach(struct probes *p, bool gone)
{
	if (gone) {
		close_all(p, ENTRIES | RETURNS);
	} else {
		close_all(p, ENTRIES);
		close_all(p, RETURNS);
	}
	free(p->fds);
	free(p->rets);
	memset(p, 0, sizeof(*p));
}

void probes_detach(struct probes *p)
{
	detach(p, false);
}

/* Detachments under way in the background, by ticket, until probes_settle. */
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pending_done = PTHREAD_COND_INITIALIZER;
static unsigned *pending, npending, last_ticket;

struct detach_job {
	struct probes p;
	bool gone;
	unsigned ticket;
};

static void *detach_thread(void *arg)
{
	struct detach_job *job = arg;

	detach(&job->p, job->gone);
	pthread_mutex_lock(&pending_lock);
	for (unsigned i = 0; i < npending; i++)
		if (pending[i] == job->ticket) {
			pending[i] = pending[--npending];
			break;
		}
	if (npending == 0)
		pthread_cond_broadcast(&pending_done);
	pthread_mutex_unlock(&pending_lock);
	free(job);
	return NULL;
}

unsigned probes_detach_later(struct probes *p, bool gone)
{
	struct detach_job *job = xcalloc(1, sizeof(*job));
	unsigned ticket;
	pthread_t th;

	job->p = *p;
	job->gone = gone;
	memset(p, 0, sizeof(*p));
	pthread_mutex_lock(&pending_lock);
	if (++last_ticket == 0) /* 0 is no ticket */
		last_ticket = 1;
	ticket = job->ticket = last_ticket;
	/* No link: nothing to wait for. */
	if (job->p.nlinks && start_thread(&th, detach_thread, job, true)) {
		pending = xrealloc(pending, (npending + 1) * sizeof(*pending));
		pending[npending++] = ticket;
		job = NULL; /* the thread's */
	}
	pthread_mutex_unlock(&pending_lock);
	if (job) { /* no thread: here and now */
		detach(&job->p, gone);
		free(job);
	}
	return ticket;
}

bool probes_done(unsigned ticket)
{
	bool done = true;

	pthread_mutex_lock(&pending_lock);
	for (unsigned i = 0; i < npending && done; i++)
		done = pending[i] != ticket;
	pthread_mutex_unlock(&pending_lock);
	return done;
}

void probes_settle(void)
{
	pthread_mutex_lock(&pending_lock);
	while (npending > 0)
		pthread_cond_wait(&pending_done, &pending_lock);
	pthread_mutex_unlock(&pending_lock);
}

void probes_prepare(struct memleak_bpf *skel)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, skel->obj)
		if (bpf_program__type(prog) == BPF_PROG_TYPE_KPROBE)
			bpf_program__set_expected_attach_type(prog, UPROBE_MULTI);
}
