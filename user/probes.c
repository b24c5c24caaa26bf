#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "elf_file.h"
#include "memleak.h"
#include "memleak.skel.h"
#include "probes.h"
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

static int add_link(struct probes *p, struct bpf_program *prog, bool ret, pid_t pid,
		    const char *path, const struct elf_func *fn, const char *name, char *err,
		    size_t errlen)
{
	/* The cookie tells a program the size of the function it is on. */
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = ret, .bpf_cookie = fn->size);
	struct bpf_link *link = bpf_program__attach_uprobe_opts(prog, pid, path, fn->offset, &opts);

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
 * An object's operator new that calls an allocator of another object
 * (libstdc++'s calls malloc) is a wrapper: it may throw, so it gets no
 * return probe (the kernel's trampoline cannot be unwound through), and its
 * blocks are counted at the malloc inside it. An allocator's own operator
 * new (jemalloc's, tcmalloc's) keeps its return probe.
 */
static bool is_wrapper(const struct elf_func *funcs, enum entry e)
{
	return e == E_NEW && !funcs[0].offset; /* alloc_fns[0] is malloc */
}

static struct bpf_program *return_prog(struct memleak_bpf *skel, const struct elf_func *funcs,
				       enum entry e)
{
	return e == E_FREE || is_wrapper(funcs, e) ? NULL : skel->progs.alloc_return;
}

static int attach_object(struct memleak_bpf *skel, const char *path, const struct elf_func *funcs,
			 pid_t pid, struct probes *p, char *err, size_t errlen)
{
	/* Return probes first (and off last): an entry seen without its return
	 * would leave a call in flight that never returns. */
	for (size_t i = 0; i < NFUNCS; i++) {
		struct bpf_program *ret = return_prog(skel, funcs, alloc_fns[i].entry);

		if (funcs[i].offset && ret &&
		    add_link(p, ret, true, pid, path, &funcs[i], alloc_fns[i].name, err, errlen))
			return -1;
	}
	for (size_t i = 0; i < NFUNCS; i++) {
		struct bpf_program *entry = is_wrapper(funcs, alloc_fns[i].entry)
						? skel->progs.new_wrapper_enter
						: entry_prog(skel, alloc_fns[i].entry);

		if (!funcs[i].offset)
			continue;
		if (add_link(p, entry, false, pid, path, &funcs[i], alloc_fns[i].name, err, errlen))
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
