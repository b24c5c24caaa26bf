/* The kernel allocation tracer (-k): loading, attaching, choosing processes. */
#ifndef KMEM_H
#define KMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "collect.h"
#include "options.h"

struct kmem_bpf;

/* Load and attach, its maps in *maps; every_process false traces only what
 * kmem_trace names (and the kernel's own allocations). Returns NULL with the
 * reason in err. */
struct kmem_bpf *kmem_start(const struct options *o, bool every_process, struct heap_maps *maps,
			    char *err, size_t errlen);
void kmem_trace(struct kmem_bpf *skel, pid_t pid);
void kmem_stop(struct kmem_bpf *skel);

#endif
