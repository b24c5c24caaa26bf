#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf_file.h"
#include "unwind_table.h"
#include "util.h"

#define REG_RBP 6
#define REG_RSP 7
#define REG_RA	16

struct table {
	struct unwind_row *rows;
	size_t n, max;
};

static void push(struct table *t, struct unwind_row row)
{
	struct unwind_row *last = t->n ? &t->rows[t->n - 1] : NULL;

	if (last && last->cfa == row.cfa && last->cfa_off == row.cfa_off && last->rbp == row.rbp)
		return; /* the same rule goes on */
	if (last && last->off == row.off) {
		*last = row; /* an empty range gives way */
		return;
	}
	if (t->n == t->max) {
		t->max = t->max ? 2 * t->max : 1024;
		t->rows = xrealloc(t->rows, t->max * sizeof(*t->rows));
	}
	t->rows[t->n++] = row;
}

/* A register saved at CFA + off: libdw gives the rule as that expression. */
static bool saved_at(const Dwarf_Op *ops, size_t nops, int64_t *off)
{
	if (nops == 1 && ops[0].atom == DW_OP_call_frame_cfa) {
		*off = 0;
		return true;
	}
	if (nops != 2 || ops[0].atom != DW_OP_call_frame_cfa || ops[1].atom != DW_OP_plus_uconst)
		return false;
	*off = (int64_t)ops[1].number;
	return true;
}

/* GCC's PLT rule: CFA = rsp + 8, plus 8 once rip & 15 reaches 11 (or 10). */
static int plt_threshold(const Dwarf_Op *ops, size_t nops)
{
	static const uint8_t shape[] = {DW_OP_breg7, DW_OP_breg16, DW_OP_lit15, DW_OP_and, 0,
					DW_OP_ge,    DW_OP_lit3,   DW_OP_shl,	DW_OP_plus};

	if (nops != sizeof(shape))
		return -1;
	for (size_t i = 0; i < nops; i++)
		if (shape[i] && ops[i].atom != shape[i])
			return -1;
	if (ops[0].number != 8 || ops[4].atom < DW_OP_lit0 || ops[4].atom > DW_OP_lit31)
		return -1;
	return ops[4].atom - DW_OP_lit0;
}

/* One row of the table from libdw's rule set at an address. */
static struct unwind_row row_of(Dwarf_Frame *fr)
{
	struct unwind_row row = {0};
	Dwarf_Op mem[3], *ops;
	size_t nops;
	int64_t off;
	bool signal;
	Dwarf_Addr start, end;

	if (dwarf_frame_info(fr, &start, &end, &signal) != REG_RA || signal)
		return row; /* a signal frame: its registers are in the context it saved */
	if (dwarf_frame_register(fr, REG_RA, mem, &ops, &nops) == 0 && nops == 0 && ops == mem) {
		row.cfa = CFA_END; /* the return address is undefined: no caller */
		return row;
	}
	if (dwarf_frame_register(fr, REG_RA, mem, &ops, &nops) || !saved_at(ops, nops, &off) ||
	    off != -8)
		return row;
	if (dwarf_frame_cfa(fr, &ops, &nops))
		return row;
	if (nops == 1 && ops[0].atom == DW_OP_bregx && ops[0].number2 <= INT16_MAX &&
	    (ops[0].number == REG_RSP || ops[0].number == REG_RBP)) {
		row.cfa = ops[0].number == REG_RSP ? CFA_RSP : CFA_RBP;
		row.cfa_off = (int16_t)ops[0].number2;
	} else if ((off = plt_threshold(ops, nops)) >= 0) {
		row.cfa = CFA_PLT;
		row.cfa_off = (int16_t)off;
	} else {
		return row;
	}
	if (dwarf_frame_register(fr, REG_RBP, mem, &ops, &nops))
		row.rbp = RBP_LOST;
	else if (nops == 0)
		row.rbp = ops ? RBP_LOST : 0; /* undefined; the same value */
	else if (saved_at(ops, nops, &off) && off < 0 && off % 8 == 0 && off >= -1024)
		row.rbp = (int8_t)(off / 8);
	else
		row.rbp = RBP_LOST;
	return row;
}

/* The rows of one function's FDE, from its start to where its rules end. */
static uint64_t add_fde(struct table *t, Elf *elf, Dwarf_CFI *cfi, uint64_t pc, uint64_t limit)
{
	while (pc < limit) {
		Dwarf_Frame *fr;
		Dwarf_Addr start, end;
		struct unwind_row row;
		uint64_t off = elf_code_offset(elf, pc);

		if (!off || dwarf_cfi_addrframe(cfi, pc, &fr))
			break;
		row = row_of(fr);
		dwarf_frame_info(fr, &start, &end, NULL);
		free(fr);
		if (end <= pc)
			break;
		row.off = (uint32_t)off;
		push(t, row);
		pc = end;
	}
	return pc;
}

/* A function's unwind information: where it starts, where it ends if that
 * is known (else at the next one's start), and in which section. */
struct fde {
	uint64_t start, end;
	Dwarf_CFI *cfi;
};

struct fdes {
	struct fde *f;
	size_t n;
};

static void add(struct fdes *l, uint64_t start, uint64_t end, Dwarf_CFI *cfi)
{
	l->f = xrealloc(l->f, (l->n + 1) * sizeof(*l->f));
	l->f[l->n++] = (struct fde){start, end, cfi};
}

static int by_start(const void *a, const void *b)
{
	const struct fde *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->cfi < y->cfi ? -1 : x->cfi > y->cfi; /* any order, but a fixed one */
}

static Elf_Data *section_data(Elf *elf, const char *want)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(elf, &shstrndx))
		return NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_PROGBITS &&
		    (name = elf_strptr(elf, shstrndx, sh.sh_name)) && strcmp(name, want) == 0)
			return elf_getdata(scn, NULL);
	}
	return NULL;
}

/* The FDEs of a .debug_frame (absolute 8-byte start and length). */
static void list_debug_frame(Elf *elf, Dwarf_CFI *cfi, struct fdes *l)
{
	Elf_Data *d = section_data(elf, ".debug_frame");
	Dwarf_Off off = 0, next;
	Dwarf_CFI_Entry e;
	const unsigned char *ident = (const unsigned char *)elf_getident(elf, NULL);

	while (d && ident && dwarf_next_cfi(ident, d, false, off, &next, &e) == 0) {
		uint64_t start, len;

		off = next;
		if (dwarf_cfi_cie_p(&e) || e.fde.end - e.fde.start < 16)
			continue;
		memcpy(&start, e.fde.start, 8);
		memcpy(&len, e.fde.start + 8, 8);
		if (len)
			add(l, start, start + len, cfi);
	}
}

/* The separate debug file of elf, by build ID or debug link, opened. */
static Elf *debug_file(Elf *elf, const char *path, int *fd)
{
	char dir[PATH_MAX], file[PATH_MAX + 64];
	const unsigned char *id;
	const char *link;
	GElf_Word crc;
	ssize_t n = dwelf_elf_gnu_build_id(elf, (const void **)&id);
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	if (n > 1) {
		int at = snprintf(file, sizeof(file), "/usr/lib/debug/.build-id/%02x/", id[0]);

		for (ssize_t i = 1; i < n; i++)
			at += snprintf(file + at, sizeof(file) - at, "%02x", id[i]);
		snprintf(file + at, sizeof(file) - at, ".debug");
		if ((*fd = open(file, O_RDONLY | O_CLOEXEC)) >= 0)
			return elf_begin(*fd, ELF_C_READ_MMAP, NULL);
	}
	link = dwelf_elf_gnu_debuglink(elf, &crc);
	if (!link || !slash)
		return NULL;
	const char *const where[] = {"%s/%s", "%s/.debug/%s", "/usr/lib/debug%s/%s"};
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		snprintf(file, sizeof(file), where[i], dir, link);
		if ((*fd = open(file, O_RDONLY | O_CLOEXEC)) >= 0)
			return elf_begin(*fd, ELF_C_READ_MMAP, NULL);
	}
	return NULL;
}

/* Open handles, closed together. */
struct sources {
	int fd, debug_fd;
	Elf *elf, *debug_elf;
	Dwarf *dwarf;
	Dwarf_CFI *eh;
};

static void close_sources(struct sources *src)
{
	if (src->eh)
		dwarf_cfi_end(src->eh);
	if (src->dwarf)
		dwarf_end(src->dwarf);
	if (src->debug_elf)
		elf_end(src->debug_elf);
	if (src->elf)
		elf_end(src->elf);
	if (src->debug_fd >= 0)
		close(src->debug_fd);
	if (src->fd >= 0)
		close(src->fd);
}

/* Every function with unwind information: .eh_frame's, and .debug_frame's
 * (in the file, or in its separate debug file) for those it leaves out. */
static void list_fdes(struct sources *src, const char *debug_path, struct fdes *l)
{
	struct fde_index idx;
	Elf *with = src->elf;
	size_t neh;

	elf_fde_index(src->elf, &idx);
	for (size_t i = 0; src->eh && i < idx.n; i++)
		add(l, fde_start(&idx, i), 0, src->eh);
	neh = l->n;
	if (!section_data(with, ".debug_frame")) {
		with = src->debug_elf = debug_file(src->elf, debug_path, &src->debug_fd);
		if (with && !section_data(with, ".debug_frame"))
			with = NULL;
	}
	if (with && (src->dwarf = dwarf_begin_elf(with, DWARF_C_READ, NULL)))
		list_debug_frame(with, dwarf_getcfi(src->dwarf), l);
	qsort(l->f, l->n, sizeof(*l->f), by_start);
	/* Where both describe a function, .eh_frame's is the one the code runs by. */
	if (neh && l->n > neh) {
		size_t k = 0;

		for (size_t i = 0; i < l->n; i++)
			if (!k || l->f[i].start != l->f[k - 1].start)
				l->f[k++] = l->f[i];
			else if (l->f[i].cfi == src->eh)
				l->f[k - 1] = l->f[i];
		l->n = k;
	}
}

int unwind_table_build(const char *path, const char *debug_path, struct unwind_row **rows,
		       size_t *n)
{
	struct sources src = {.fd = -1, .debug_fd = -1};
	struct table t = {0};
	struct fdes l = {0};

	*rows = NULL;
	*n = 0;
	elf_version(EV_CURRENT);
	src.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (src.fd < 0)
		return -2;
	src.elf = elf_begin(src.fd, ELF_C_READ_MMAP, NULL);
	if (!src.elf || elf_kind(src.elf) != ELF_K_ELF) {
		close_sources(&src);
		return -1;
	}
	src.eh = dwarf_getcfi_elf(src.elf);
	list_fdes(&src, debug_path ? debug_path : path, &l);
	for (size_t i = 0; i < l.n; i++) {
		uint64_t next = i + 1 < l.n ? l.f[i + 1].start : UINT64_MAX,
			 limit = l.f[i].end && l.f[i].end < next ? l.f[i].end : next,
			 end = add_fde(&t, src.elf, l.f[i].cfi, l.f[i].start, limit);

		/* Code between functions has no rules: nothing is known there. */
		if (end < next && elf_code_offset(src.elf, end))
			push(&t,
			     (struct unwind_row){.off = (uint32_t)elf_code_offset(src.elf, end)});
	}
	close_sources(&src);
	free(l.f);
	*rows = t.rows;
	*n = t.n;
	return t.n ? 0 : -1;
}
