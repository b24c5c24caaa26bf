/* Return sites found by decoding: real ret instructions, and every way out. */
#include <stdio.h>
#include <string.h>

#include "elf_file.h"
#include "ret_sites.h"
#include "unit.h"

#define JEMALLOC "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

static int is_ret(FILE *f, uint64_t off)
{
	unsigned char b[2] = {0};

	if (fseek(f, (long)off, SEEK_SET) || fread(b, 1, 2, f) < 1)
		return 0;
	return b[0] == 0xc3 || (b[0] == 0xf3 && b[1] == 0xc3); /* ret, rep ret */
}

void test_ret_sites_of_jemalloc_new(void)
{
	const char *names[] = {"_Znwm", "_Znam", "_ZnwmSt11align_val_t"};
	struct elf_func fn[3];
	uint64_t sites[MAX_RET_SITES];
	FILE *f = fopen(JEMALLOC, "rb");

	CHECK(f != NULL && elf_funcs(JEMALLOC, names, 3, fn) == 3);
	for (int i = 0; f && i < 3; i++) {
		int n = ret_sites(JEMALLOC, fn[i].offset, fn[i].size, sites, MAX_RET_SITES);

		/* new's fast path returns itself; its slow path is a tail call whose
		 * returns are followed too */
		CHECK(n >= 2);
		for (int k = 0; k < n; k++)
			CHECK(is_ret(f, sites[k]));
	}
	/* Not a function start: refused, never guessed. */
	CHECK(ret_sites(JEMALLOC, fn[0].offset + 1, fn[0].size - 1, sites, MAX_RET_SITES) == -1);
	if (f)
		fclose(f);
}
