#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A probe at site (file offset) in function fn; the cookie tells the
 * program the function's size and how far into it the site is. */
static int add_link(struct probes *p, struct bpf_program *prog, bool ret, pid_t pid,
		    const char *path, const struct elf_func *fn, uint64_t site, const char *name,
		    char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = ret,
		    .bpf_cookie = fn->size | (site - fn->offset) << 32);
	struct bpf_link *link = bpf_program__attach_uprobe_opts(prog, pid, path, site, &opts);

	if (!link) {
		snprintf(err, errlen, "cannot attach a uprobe to %s in %s: %s", name, path,
			 strerror(errno));
		return -1;
	}
	p->links = xrealloc(p->links, (p->nlinks + 1) * sizeof(*p->links));
	p->links[p->nlinks++] = link;
	return 0;
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
 * many it has, -1 if they cannot be found, -2 if one cannot be probed. */
static int attach_ret_sites(struct memleak_bpf *skel, const char *path, const struct elf_func *fn,
			    const char *name, pid_t pid, struct probes *p, uint64_t *done,
			    int *ndone, char *err, size_t errlen)
{
	uint64_t sites[MAX_RET_SITES];
	int n = ret_sites(path, fn->offset, fn->size, sites, MAX_RET_SITES);

	for (int i = 0; i < n; i++) {
		struct elf_func site = {.offset = sites[i]};
		bool seen = false;

		for (int k = 0; k < *ndone; k++)
			seen |= done[k] == sites[i];
		if (seen || *ndone == MAX_RET_SITES * 4)
			continue;
		done[(*ndone)++] = sites[i];
		if (add_link(p, skel->progs.alloc_ret_site, false, pid, path, &site, sites[i], name,
			     err, errlen))
			return -2;
	}
	return n;
}

/* How each allocating function's result is seen: a return probe, or probes
 * on its ret instructions (operator new of an allocator); wrappers and frees
 * need neither. */
static int attach_returns(struct memleak_bpf *skel, const char *path, const struct elf_func *funcs,
			  const uint64_t *sites, pid_t pid, struct probes *p, char *err,
			  size_t errlen)
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
			n = attach_ret_sites(skel, path, &funcs[i], alloc_fns[i].name, pid, p, done,
					     &ndone, err, errlen);
		if (n == -2)
			return -1;
		if (n == -1)
			warnx_("%s in %s: its returns cannot be found; it gets a return probe, "
			       "and a new that throws there would end the program",
			       alloc_fns[i].name, path);
		/* At the entry probe's site: one trap for both. */
		if (n <= 0 && add_link(p, skel->progs.alloc_return, true, pid, path, &funcs[i],
				       sites[i], alloc_fns[i].name, err, errlen))
			return -1;
	}
	return 0;
}

static int attach_object(struct memleak_bpf *skel, const char *path, const struct elf_func *funcs,
			 pid_t pid, struct probes *p, char *err, size_t errlen)
{
	uint64_t sites[NFUNCS];

	for (size_t i = 0; i < NFUNCS; i++)
		sites[i] = funcs[i].offset ? probe_site(path, funcs[i].offset, funcs[i].size,
							entry_args(alloc_fns[i].entry))
					   : 0;
	/* Returns first (and off last): an entry seen without its return would
	 * leave a call in flight that never returns. */
	if (attach_returns(skel, path, funcs, sites, pid, p, err, errlen))
		return -1;
	for (size_t i = 0; i < NFUNCS; i++) {
		struct bpf_program *entry = is_wrapper(funcs, alloc_fns[i].entry)
						? skel->progs.new_wrapper_enter
						: entry_prog(skel, alloc_fns[i].entry);

		if (!funcs[i].offset)
			continue;
		if (add_link(p, entry, false, pid, path, &funcs[i], sites[i], alloc_fns[i].name,
			     err, errlen))
			return -1;
		p->nfuncs++;
	}
	return 0;
}

int probes_attach(struct memleak_bpf *skel, const struct objlist *objs, pid_t pid, struct probes *p,
		  char *err, size_t errlen)
{
	struct elf_func funcs[NFUNCS];
	int objects = 0;

	for (int i = 0; i < objs->n; i++) {
		if (resolve(objs->paths[i], funcs) <= 0)
			continue;
		if (attach_object(skel, objs->paths[i], funcs, pid, p, err, errlen))
			return -1;
		objects++;
	}
	return objects;
}

void probes_detach(struct probes *p)
{
	/* Entry probes off first: see attach_object. */
	for (int i = p->nlinks - 1; i >= 0; i--)
		bpf_link__destroy(p->links[i]);
	free(p->links);
	memset(p, 0, sizeof(*p));
}
