/*
 * Where memleak-bpf probes functions of an object: `probe_sites PATH
 * NAME:NARGS...` prints "NAME ENTRY SITE" (file offsets, hex) for each
 * function PATH defines. scripts/bench.sh puts its floor's empty probes there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elf_file.h"
#include "probe_site.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: probe_sites PATH NAME:NARGS...\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		char name[128];
		const char *names[1] = {name};
		struct elf_func fn = {0};
		int nargs = 1;

		if (sscanf(argv[i], "%127[^:]:%d", name, &nargs) < 1)
			return 2;
		if (elf_funcs(argv[1], names, 1, &fn) != 1 || !fn.offset)
			continue;
		printf("%s %#lx %#lx\n", name, (unsigned long)fn.offset,
		       (unsigned long)probe_site(argv[1], fn.offset, fn.size, nargs));
	}
	return 0;
}
