#include <elfutils/libdw.h>
#include <dwarf.h>
#include <fcntl.h>
#include <gelf.h>
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

int unwind_table_build(const char *path, struct unwind_row **rows, size_t *n)
{
	struct table t = {0};
	struct fde_index fdes;
	Dwarf_CFI *cfi;
	Elf *elf;
	int fd;

	*rows = NULL;
	*n = 0;
	elf_version(EV_CURRENT);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	cfi = elf ? dwarf_getcfi_elf(elf) : NULL;
	if (!cfi) {
		if (elf)
			elf_end(elf);
		close(fd);
		return -1;
	}
	elf_fde_index(elf, &fdes);
	for (size_t i = 0; i < fdes.n; i++) {
		uint64_t pc = fde_start(&fdes, i),
			 limit = i + 1 < fdes.n ? fde_start(&fdes, i + 1) : UINT64_MAX,
			 end = add_fde(&t, elf, cfi, pc, limit);

		/* Code between functions has no rules: nothing is known there. */
		if (end < limit && elf_code_offset(elf, end))
			push(&t, (struct unwind_row){.off = (uint32_t)elf_code_offset(elf, end)});
	}
	dwarf_cfi_end(cfi);
	elf_end(elf);
	close(fd);
	*rows = t.rows;
	*n = t.n;
	return fdes.n ? 0 : -1;
}
