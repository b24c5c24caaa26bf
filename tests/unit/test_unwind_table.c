/*
 * Unwind tables against a reference: this test program (built -O2, no frame
 * pointers) walks its own stack with the rows built from its own and libc's
 * .eh_frame, the way the BPF walker does, and must find the return addresses
 * glibc's backtrace() (libgcc's DWARF unwinder) finds.
 */
#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elf_file.h"
#include "unit.h"
#include "unwind_table.h"

#define LIBC	  "/usr/lib/x86_64-linux-gnu/libc.so.6"
#define MAX_DEPTH 32

struct object {
	unsigned long start, end, off;
	char path[256];
	struct unwind_row *rows;
	size_t n;
};

struct regs {
	unsigned long pc, sp, bp;
};

static struct object objects[64];
static int nobjects;

static void load_objects(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];

	while (f && fgets(line, sizeof(line), f) && nobjects < 64) {
		struct object *o = &objects[nobjects];
		char perms[5];
		int at = 0;

		if (sscanf(line, "%lx-%lx %4s %lx %*s %*s %n", &o->start, &o->end, perms, &o->off,
			   &at) < 4 ||
		    perms[2] != 'x' || line[at] != '/')
			continue;
		snprintf(o->path, sizeof(o->path), "%.*s", (int)strcspn(line + at, "\n"),
			 line + at);
		if (unwind_table_build(o->path, NULL, &o->rows, &o->n) == 0)
			nobjects++;
	}
	if (f)
		fclose(f);
}

static const struct unwind_row *row_at(unsigned long pc)
{
	for (int i = 0; i < nobjects; i++) {
		struct object *o = &objects[i];
		unsigned long off = pc - o->start + o->off;
		const struct unwind_row *row = NULL;

		if (pc < o->start || pc >= o->end)
			continue;
		for (size_t k = 0; k < o->n && o->rows[k].off <= off; k++)
			row = &o->rows[k];
		return row;
	}
	return NULL;
}

/* The BPF walker's step, in C: 0 when the walk ends. */
static int step(struct regs *r, int frame)
{
	const struct unwind_row *row = row_at(frame ? r->pc - 1 : r->pc);
	unsigned long cfa;

	if (!row || row->cfa == CFA_NONE || row->cfa == CFA_END)
		return 0;
	cfa = (row->cfa == CFA_RBP ? r->bp : r->sp) + row->cfa_off;
	if (row->cfa == CFA_PLT)
		cfa = r->sp + 8 + ((r->pc & 15) >= (unsigned long)row->cfa_off ? 8 : 0);
	if (row->rbp < 0)
		r->bp = *(unsigned long *)(cfa + row->rbp * 8);
	else if (row->rbp == RBP_LOST)
		r->bp = 0;
	r->pc = *(unsigned long *)(cfa - 8);
	r->sp = cfa;
	return r->pc != 0;
}

static __attribute__((noinline)) int compare_walks(int d)
{
	void *ref[MAX_DEPTH];
	unsigned long ours[MAX_DEPTH];
	struct regs r;
	int nref, nours = 0, same = 0;

	asm volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
		     : "=r"(r.pc), "=r"(r.sp), "=r"(r.bp));
	nref = backtrace(ref, MAX_DEPTH) + d;
	do
		ours[nours++] = r.pc;
	while (nours < MAX_DEPTH && step(&r, nours - 1));
	/* Frame 0 is in this function either way; the callers must agree. */
	while (same + 1 < nref && same + 1 < nours &&
	       ours[same + 1] == (unsigned long)ref[same + 1])
		same++;
	if (same + 1 < nref - 1) /* backtrace may add the 0 that ends the stack */
		printf("  walks part at frame %d: ours %#lx, backtrace's %p\n", same + 1,
		       same + 1 < nours ? ours[same + 1] : 0, ref[same + 1]);
	return same;
}

#define LEVEL(k, next)                                                                             \
	static __attribute__((noinline)) int level##k(int d)                                       \
	{                                                                                          \
		int r = next(d);                                                                   \
		asm volatile("" ::: "memory");                                                     \
		return r + d;                                                                      \
	}
LEVEL(3, compare_walks)
LEVEL(2, level3)
LEVEL(1, level2)

void test_unwind_table_walk_equals_backtrace(void)
{
	struct unwind_row *rows;
	size_t n, ends = 0;
	int same;

	/* libc: sorted rows, and an end where the stack ends (clone, _start). */
	CHECK(unwind_table_build(LIBC, NULL, &rows, &n) == 0 && n > 10000);
	for (size_t i = 1; i < n; i++)
		CHECK(rows[i].off > rows[i - 1].off);
	for (size_t i = 0; i < n; i++)
		ends += rows[i].cfa == CFA_END;
	CHECK(ends >= 1);
	free(rows);
	CHECK(unwind_table_build("/proc/self/maps", NULL, &rows, &n) == -1 && n == 0);
	CHECK(unwind_table_build("/nonexistent/lib.so", NULL, &rows, &n) == -2 && n == 0);

	load_objects();
	CHECK(nobjects >= 2);
	same = level1(0);
	/* level3, level2, level1, this test, the test runner, main, libc's
	 * caller of main, and on to _start */
	CHECK(same >= 7);
	for (int i = 0; i < nobjects; i++)
		free(objects[i].rows);
	nobjects = 0;
}
