#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "memleak.h"
#include "memleak.skel.h"
#include "pages.h"

/* The programs of pages mode (bpf/pages.bpf.h), in the order they are
 * attached: the frees' first, so that a page counted is never missed on its
 * way out. */
#define PAGE_PROGRAMS(X)                                                                           \
	X(page_freed)                                                                              \
	X(migration_started)                                                                       \
	X(migration_ended)                                                                         \
	X(reclaim_started)                                                                         \
	X(reclaim_ended)                                                                           \
	X(memcg_reclaim_started)                                                                   \
	X(memcg_reclaim_ended)                                                                     \
	X(page_counted)                                                                            \
	X(page_fault_user)                                                                         \
	X(page_fault_kernel)                                                                       \
	X(page_taken)

void pages_prepare(struct memleak_bpf *skel, bool wanted)
{
#define AUTOLOAD(name) bpf_program__set_autoload(skel->progs.name, wanted);
	PAGE_PROGRAMS(AUTOLOAD)
#undef AUTOLOAD
}

static int attach_one(struct bpf_program *prog, struct bpf_link **link)
{
	if (!*link)
		*link = bpf_program__attach(prog);
	return *link ? 0 : -errno;
}

int pages_trace(struct memleak_bpf *skel, pid_t pid, char *err, size_t errlen)
{
	__u32 tgid = (__u32)pid;
	__u8 on = 1;
	int e = 0;

#define ATTACH(name)                                                                               \
	if (!e)                                                                                    \
		e = attach_one(skel->progs.name, &skel->links.name);
	PAGE_PROGRAMS(ATTACH)
#undef ATTACH
	if (e) {
		snprintf(err, errlen,
			 "--pages: cannot attach to the kernel's page events (mm_page_alloc, "
			 "rss_stat, mm_page_free, page faults, migration and reclaim): %s",
			 strerror(-e));
		return -1;
	}
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.page_procs), &tgid, &on, BPF_ANY)) {
		snprintf(err, errlen, "--pages: cannot add PID %d to the traced set: %s", pid,
			 strerror(errno));
		return -1;
	}
	return 0;
}

void pages_untrace(struct memleak_bpf *skel, pid_t pid)
{
	__u32 tgid = (__u32)pid;

	bpf_map_delete_elem(bpf_map__fd(skel->maps.page_procs), &tgid);
}
