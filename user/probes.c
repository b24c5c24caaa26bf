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
    {"_Znwm", E_MALLOC},
    {"_Znam", E_MALLOC},
    {"_ZnwmRKSt9nothrow_t", E_MALLOC},
    {"_ZnamRKSt9nothrow_t", E_MALLOC},
    {"_ZnwmSt11align_val_t", E_MALLOC},
    {"_ZnamSt11align_val_t", E_MALLOC},
    {"_ZnwmSt11align_val_tRKSt9nothrow_t", E_MALLOC},
    {"_ZnamSt11align_val_tRKSt9nothrow_t", E_MALLOC},
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
		    const char *path, uint64_t offset, const char *fn, char *err, size_t errlen)
{
	struct bpf_link *link = bpf_program__attach_uprobe(prog, ret, pid, path, offset);

	if (!link) {
		snprintf(err, errlen, "cannot attach a uprobe to %s in %s: %s", fn, path,
			 strerror(errno));
		return -1;
	}
	p->links = xrealloc(p->links, (p->nlinks + 1) * sizeof(*p->links));
	p->links[p->nlinks++] = link;
	return 0;
}

/* Offsets of the functions path defines, with aliases of one address kept once. */
static int resolve(const char *path, uint64_t *offsets)
{
	const char *names[NFUNCS];
	int found;

	for (size_t i = 0; i < NFUNCS; i++)
		names[i] = alloc_fns[i].name;
	found = elf_func_offsets(path, names, NFUNCS, offsets);
	for (size_t i = 0; i < NFUNCS; i++)
		for (size_t k = 0; k < i && offsets[i]; k++)
			if (offsets[k] == offsets[i])
				offsets[i] = 0, found--;
	return found;
}

static int attach_object(struct memleak_bpf *skel, const char *path, const uint64_t *offsets,
			 pid_t pid, struct probes *p, char *err, size_t errlen)
{
	/* Return probes first: an entry seen without its return would leave the
	 * thread's call state waiting for a return that never comes. */
	for (size_t i = 0; i < NFUNCS; i++)
		if (offsets[i] && alloc_fns[i].entry != E_FREE &&
		    add_link(p, skel->progs.alloc_return, true, pid, path, offsets[i],
			     alloc_fns[i].name, err, errlen))
			return -1;
	for (size_t i = 0; i < NFUNCS; i++) {
		if (!offsets[i])
			continue;
		if (add_link(p, entry_prog(skel, alloc_fns[i].entry), false, pid, path, offsets[i],
			     alloc_fns[i].name, err, errlen))
			return -1;
		p->nfuncs++;
	}
	return 0;
}

int probes_attach(struct memleak_bpf *skel, const struct objlist *objs, pid_t pid, struct probes *p,
		  char *err, size_t errlen)
{
	uint64_t offsets[NFUNCS];
	int objects = 0;

	for (int i = 0; i < objs->n; i++) {
		if (resolve(objs->paths[i], offsets) <= 0)
			continue;
		if (attach_object(skel, objs->paths[i], offsets, pid, p, err, errlen))
			return -1;
		objects++;
	}
	return objects;
}

void probes_detach(struct probes *p)
{
	for (int i = 0; i < p->nlinks; i++)
		bpf_link__destroy(p->links[i]);
	free(p->links);
	memset(p, 0, sizeof(*p));
}
