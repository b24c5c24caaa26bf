#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "kmem.h"
#include "kmem.skel.h"
#include "util.h"

/* A program for a tracepoint this kernel lacks is switched off, with a note,
 * rather than failing -k whole. */
static void skip_missing_tracepoints(struct kmem_bpf *skel)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	struct bpf_program *prog;

	if (!vmlinux)
		return; /* the load says what is wrong */
	bpf_object__for_each_program(prog, skel->obj)
	{
		const char *tp = strchr(bpf_program__section_name(prog), '/');
		char name[128];

		if (!tp)
			continue;
		snprintf(name, sizeof(name), "btf_trace_%s", tp + 1);
		if (btf__find_by_name_kind(vmlinux, name, BTF_KIND_TYPEDEF) >= 0)
			continue;
		bpf_program__set_autoload(prog, false);
		warnx_("-k: this kernel has no tracepoint %s: what it reports is not counted",
		       tp + 1);
	}
	btf__free(vmlinux);
}

struct kmem_bpf *kmem_start(const struct options *o, bool every_process, struct heap_maps *maps,
			    char *err, size_t errlen)
{
	struct kmem_bpf *skel = kmem_bpf__open();
	struct heap_objects heap;
	int e;

	if (!skel) {
		snprintf(err, errlen, "-k: cannot open the kernel BPF object: %s", strerror(errno));
		return NULL;
	}
	heap = HEAP_OBJECTS(skel);
	skel->rodata->min_size = o->min_size;
	skel->rodata->max_size = o->max_size;
	skel->rodata->sample_rate = o->sample_rate;
	skel->rodata->self_tgid = (__u32)getpid();
	skel->rodata->page_size = (__u64)sysconf(_SC_PAGESIZE);
	skel->rodata->ncpus = (__u32)libbpf_num_possible_cpus();
	skel->rodata->every_process = every_process;
	skip_missing_tracepoints(skel);
	e = heap_maps_size(&heap, o->max_allocs, o->max_stacks);
	if (!e)
		e = kmem_bpf__load(skel);
	if (!e)
		e = kmem_bpf__attach(skel);
	if (!e)
		e = heap_maps_open(maps, &heap);
	if (e) {
		snprintf(err, errlen,
			 "-k: cannot trace the kernel's mm tracepoints: %s (this kernel may lack "
			 "them or BTF for them; MEMLEAK_BPF_DEBUG=1 shows libbpf's reason)",
			 strerror(-e));
		kmem_bpf__destroy(skel);
		return NULL;
	}
	return skel;
}

void kmem_trace(struct kmem_bpf *skel, pid_t pid)
{
	__u32 key = (__u32)pid;
	__u8 yes = 1;

	bpf_map_update_elem(bpf_map__fd(skel->maps.owners), &key, &yes, BPF_ANY);
}

void kmem_stop(struct kmem_bpf *skel)
{
	kmem_bpf__destroy(skel);
}
