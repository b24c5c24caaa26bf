/*
 * The floor of a heap tracer's cost: empty BPF programs on malloc, calloc and
 * realloc (entry and return) and free of one library, for every process,
 * until SIGINT.
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

static const struct {
	const char *name;
	int nargs; /* the arguments its probe reads */
	bool ret;
} funcs[] = {{"malloc", 1, true}, {"calloc", 2, true}, {"realloc", 2, true}, {"free", 1, false}};
#define NFUNCS (sizeof(funcs) / sizeof(funcs[0]))

int main(int argc, char **argv)
{
	const char *names[NFUNCS];
	struct elf_func fn[NFUNCS] = {0};
	uint64_t at[NFUNCS];
	struct bpf_object *obj;
	bool sites;

	if (argc != 4 || (strcmp(argv[1], "sites") && strcmp(argv[1], "entries"))) {
		fprintf(stderr, "usage: floor_probes sites|entries LIB BPF_OBJECT\n");
		return 2;
	}
	sites = strcmp(argv[1], "sites") == 0;
	for (size_t i = 0; i < NFUNCS; i++)
		names[i] = funcs[i].name;
	if (elf_funcs(argv[2], names, NFUNCS, fn) < 0 || !fn[0].offset || !fn[NFUNCS - 1].offset) {
		fprintf(stderr, "floor_probes: no malloc and free in %s\n", argv[2]);
		return 1;
	}
	obj = bpf_object__open_file(argv[3], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "floor_probes: cannot load the empty programs\n");
		return 1;
	}
	printf("ready:");
	for (size_t i = 0; i < NFUNCS; i++) {
		if (!fn[i].offset)
			continue;
		at[i] = sites ? probe_site(argv[2], fn[i].offset, fn[i].size, funcs[i].nargs)
			      : fn[i].offset;
		if ((funcs[i].ret && attach(obj, "empty_return", true, argv[2], at[i])) ||
		    attach(obj, "empty_entry", false, argv[2], at[i])) {
			fprintf(stderr, "floor_probes: cannot attach to %s\n", funcs[i].name);
			return 1;
		}
		printf(" %s +%lu", funcs[i].name, (unsigned long)(at[i] - fn[i].offset));
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("\n");
	fflush(stdout);
	pause();
	return 0;
}
