/* The allocator functions we probe, and attaching the BPF programs to them. */
#ifndef PROBES_H
#define PROBES_H

#include <stddef.h>
#include <sys/types.h>

#include "discover.h"

struct memleak_bpf;
struct bpf_link;

struct probes {
	struct bpf_link **links;
	int nlinks;
	int nfuncs; /* allocator functions attached */
};

/*
 * Attach to every allocator function each object defines, for process pid
 * (-1: every process). Returns how many objects had allocator functions,
 * or -1 with the reason in err.
 */
int probes_attach(struct memleak_bpf *skel, const struct objlist *objs, pid_t pid, struct probes *p,
		  char *err, size_t errlen);
void probes_detach(struct probes *p);

#endif
