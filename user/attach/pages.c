#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "memleak.h"
#include "memleak.skel.h"
#include "pages.h"

void pages_prepare(struct memleak_bpf *skel, bool wanted)
{
	bpf_program__set_autoload(skel->progs.page_taken, wanted);
	bpf_program__set_autoload(skel->progs.page_counted, wanted);
	bpf_program__set_autoload(skel->progs.page_freed, wanted);
	bpf_program__set_autoload(skel->progs.page_fault_user, wanted);
	bpf_program__set_autoload(skel->progs.page_fault_kernel, wanted);
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
	int e;

	/* The frees first: a page counted is never missed on its way out. */
	e = attach_one(skel->progs.page_freed, &skel->links.page_freed);
	if (!e)
		e = attach_one(skel->progs.page_counted, &skel->links.page_counted);
	if (!e)
		e = attach_one(skel->progs.page_fault_user, &skel->links.page_fault_user);
	if (!e)
		e = attach_one(skel->progs.page_fault_kernel, &skel->links.page_fault_kernel);
	if (!e)
		e = attach_one(skel->progs.page_taken, &skel->links.page_taken);
	if (e) {
		snprintf(err, errlen,
			 "--pages: cannot attach to the kernel's page events (mm_page_alloc, "
			 "rss_stat, mm_page_free, page faults): %s",
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
