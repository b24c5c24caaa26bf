/* The allocator functions we probe, and attaching the BPF programs to them. */
#ifndef PROBES_H
#define PROBES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "discover.h"

struct memleak_bpf;

/* One uprobe_multi link per (object, program): its fd, and whether it
 * sees calls end (taken down after the entries). */
struct probes {
	int *fds;
	bool *rets;
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
/* The same in the background (p is emptied now): for a process that has
 * exited (gone: its links close all at once, no order to keep), runs
 * another program or is no longer watched, or a tracer about to exit.
 * Returns a ticket (never 0) that probes_done(ticket) is true of once no
 * probe of p can run; probes_settle waits for all of them. */
unsigned probes_detach_later(struct probes *p, bool gone);
bool probes_done(unsigned ticket);
void probes_settle(void);
/* Before the BPF object is loaded: its uprobe programs are for uprobe_multi links. */
void probes_prepare(struct memleak_bpf *skel);

#endif
