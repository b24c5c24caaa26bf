/*
 * The floor of a heap tracer's cost: empty BPF programs on malloc (entry and
 * return) and free of one library, for every process, until SIGINT.
 * `floor_probes sites LIB` puts them where memleak-bpf would (probe_site);
 * `floor_probes entries LIB` on the function entries, as other tools do.
 * Prints "ready" once attached. Used by scripts/bench.sh.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "elf_file.h"
#include "probe_site.h"

static void on_signal(int sig)
{
	(void)sig;
}

static int attach(struct bpf_object *obj, const char *prog, bool ret, const char *lib,
		  uint64_t offset)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = ret);
	struct bpf_program *p = bpf_object__find_program_by_name(obj, prog);

	return p && bpf_program__attach_uprobe_opts(p, -1, lib, offset, &opts) ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *names[] = {"malloc", "free"};
	struct elf_func fn[2] = {0};
	uint64_t at[2];
	struct bpf_object *obj;
	bool sites;

	if (argc != 4 || (strcmp(argv[1], "sites") && strcmp(argv[1], "entries"))) {
		fprintf(stderr, "usage: floor_probes sites|entries LIB BPF_OBJECT\n");
		return 2;
	}
	sites = strcmp(argv[1], "sites") == 0;
	if (elf_funcs(argv[2], names, 2, fn) != 2) {
		fprintf(stderr, "floor_probes: no malloc and free in %s\n", argv[2]);
		return 1;
	}
	for (int i = 0; i < 2; i++)
		at[i] = sites ? probe_site(argv[2], fn[i].offset, fn[i].size, 1) : fn[i].offset;
	obj = bpf_object__open_file(argv[3], NULL);
	if (!obj || bpf_object__load(obj) || attach(obj, "empty_return", true, argv[2], at[0]) ||
	    attach(obj, "empty_entry", false, argv[2], at[0]) ||
	    attach(obj, "empty_entry", false, argv[2], at[1])) {
		fprintf(stderr, "floor_probes: cannot load or attach the empty programs\n");
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("ready: malloc +%lu, free +%lu\n", (unsigned long)(at[0] - fn[0].offset),
	       (unsigned long)(at[1] - fn[1].offset));
	fflush(stdout);
	pause();
	return 0;
}
