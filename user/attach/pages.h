/* --pages: the kernel's page events attribute a process's resident pages
 * (bpf/pages.bpf.h), in place of allocator probes. */
#ifndef PAGES_H
#define PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct memleak_bpf;

/* Before the object loads: its page programs load only if wanted. */
void pages_prepare(struct memleak_bpf *skel, bool wanted);
/* Count pid's resident pages from now on; the programs are attached on the
 * first call. -1 with the reason in err if they cannot be. */
int pages_trace(struct memleak_bpf *skel, pid_t pid, char *err, size_t errlen);
/* pid's pages are no longer counted from now on. */
void pages_untrace(struct memleak_bpf *skel, pid_t pid);

#endif
