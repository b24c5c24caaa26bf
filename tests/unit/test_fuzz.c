/* The ELF and DWARF readers on hundreds of damaged files: flipped bytes and
 * truncations of this very program (which has symbols and DWARF). Passing
 * means none crashed, and the checker turned away every truncated one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_file.h"
#include "ret_sites.h"
#include "symbolize.h"
#include "unit.h"
#include "util.h"

#define MUTANTS 300

static unsigned char *read_self(size_t *len)
{
	FILE *f = fopen("/proc/self/exe", "rb");
	unsigned char *buf = NULL;
	size_t n;

	*len = 0;
	if (!f)
		return NULL;
	buf = xcalloc(64 << 20, 1);
	n = fread(buf, 1, 64 << 20, f);
	fclose(f);
	*len = n;
	return buf;
}

/* Read path every way the tool reads a file it is given or finds mapped;
 * returns the symbol found at this function's own offset. */
static const char *read_every_way(const char *path, size_t len)
{
	static char found[256];
	static const char *const names[] = {"malloc", "main", "test_fuzz_readers"};
	struct elf_func funcs[3];
	struct elf_deps deps;
	struct symbolizer s;
	struct frame fr;
	char why[128], maps[512];
	uint64_t sites[MAX_RET_SITES];
	struct stat st;

	elf_check(path, why, sizeof(why));
	ret_sites(path, 4096, 4096, sites, MAX_RET_SITES);
	elf_funcs(path, names, 3, funcs);
	if (elf_read_deps(path, &deps) == 0)
		elf_deps_free(&deps);
	symbolizer_init(&s, getpid());
	if (stat(path, &st))
		st.st_ino = 1;
	snprintf(maps, sizeof(maps), "10000000-%llx r-xp 00000000 08:01 %llu %s\n",
		 0x10000000ULL + ((len + 4095) & ~4095ULL), (unsigned long long)st.st_ino, path);
	s.maps = xstrdup(maps);
	for (uint64_t a = 0x10001000; a < 0x10000000 + len; a += len / 7 + 1)
		symbolizer_lookup(&s, a, &fr);
	found[0] = '\0';
	if (funcs[2].offset) {
		symbolizer_lookup(&s, 0x10000000 + funcs[2].offset + 1, &fr);
		snprintf(found, sizeof(found), "%s", fr.symbol);
	}
	symbolizer_free(&s);
	return found;
}

void test_fuzz_readers(void)
{
	size_t len;
	unsigned char *self = read_self(&len), *mut;
	char dir[] = "/tmp/memleak-fuzz-XXXXXX", path[64], why[128];
	int truncated_accepted = 0;
	FILE *f;

	CHECK(self && len > 4096 && mkdtemp(dir));
	if (!self || len <= 4096)
		return;
	/* Intact, the readers find this function: they do read the file. */
	snprintf(path, sizeof(path), "%s/intact", dir);
	f = fopen(path, "wb");
	CHECK(f && fwrite(self, 1, len, f) == len);
	if (f)
		fclose(f);
	CHECK(strcmp(read_every_way(path, len), "test_fuzz_readers") == 0);
	unlink(path);
	mut = xcalloc(len, 1);
	srand(12345);
	for (int i = 0; i < MUTANTS; i++) {
		size_t n = len;

		memcpy(mut, self, len);
		if (i % 3 == 2) {
			n = (size_t)rand() % len; /* truncated */
		} else {
			for (int k = 0, flips = 1 + rand() % 64; k < flips; k++)
				mut[(size_t)rand() % (i % 3 ? len : 4096)] = (unsigned char)rand();
		}
		snprintf(path, sizeof(path), "%s/m%d", dir, i); /* a new path: no cache hit */
		f = fopen(path, "wb");
		if (!f || fwrite(mut, 1, n, f) != n)
			CHECK(!"cannot write a mutant");
		if (f)
			fclose(f);
		read_every_way(path, n);
		if (i % 3 == 2 && n < len / 2 && elf_check(path, why, sizeof(why)) == 0)
			truncated_accepted++;
		unlink(path);
	}
	CHECK(truncated_accepted == 0);
	rmdir(dir);
	free(mut);
	free(self);
}
