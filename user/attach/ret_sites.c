#include <capstone/capstone.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf_file.h"
#include "ret_sites.h"
#include "util.h"

#define MAX_FUNCS 8	    /* a function and the ones it tail-calls, transitively */
#define MAX_CODE  (1 << 16) /* bytes of one function */

struct span {
	uint64_t lo, hi; /* vaddr */
};

struct walk {
	int fd;
	Elf *elf;
	struct fde_index fdes;
	csh cs;
	struct span funcs[MAX_FUNCS];
	int nfuncs;
	uint64_t *sites;
	int nsites, max;
};

/* Add the code from vaddr (a function, or the cold part of one that compilers
 * split off) to the start of the next function in the search table. */
static int add_func(struct walk *w, uint64_t vaddr)
{
	size_t next = fde_after(&w->fdes, vaddr);

	for (int i = 0; i < w->nfuncs; i++)
		if (vaddr >= w->funcs[i].lo && vaddr < w->funcs[i].hi)
			return 0; /* known already: a jump within the set */
	if (w->nfuncs == MAX_FUNCS || next == 0 || next == w->fdes.n)
		return -1; /* outside every function with unwind information */
	w->funcs[w->nfuncs++] = (struct span){.lo = vaddr, .hi = fde_start(&w->fdes, next)};
	return 0;
}

static int add_site(struct walk *w, uint64_t vaddr)
{
	uint64_t off = elf_code_offset(w->elf, vaddr);

	if (!off || w->nsites == w->max)
		return -1;
	for (int i = 0; i < w->nsites; i++)
		if (w->sites[i] == off)
			return 0;
	w->sites[w->nsites++] = off;
	return 0;
}

/*
 * Where a jump to vaddr goes on to when vaddr is a PLT entry (an optional
 * endbr64, then jmp *slot(%rip)): the object's own function bound to that
 * slot, or 0 if it is another object's (not known before run time). vaddr
 * itself when it is no PLT entry.
 */
static uint64_t through_plt(struct walk *w, uint64_t vaddr)
{
	uint64_t off = elf_code_offset(w->elf, vaddr), to = vaddr;
	uint8_t code[16];
	cs_insn *insn = NULL;
	size_t n;

	if (!off || pread(w->fd, code, sizeof(code), (off_t)off) != (ssize_t)sizeof(code))
		return vaddr;
	n = cs_disasm(w->cs, code, sizeof(code), vaddr, 2, &insn);
	for (size_t i = 0; i < n; i++) {
		cs_x86 *x = &insn[i].detail->x86;

		if (insn[i].id == X86_INS_ENDBR64)
			continue;
		if (insn[i].id == X86_INS_JMP && x->op_count == 1 &&
		    x->operands[0].type == X86_OP_MEM && x->operands[0].mem.base == X86_REG_RIP &&
		    x->operands[0].mem.index == X86_REG_INVALID)
			to = elf_plt_slot_target(w->elf, insn[i].address + insn[i].size +
							       (uint64_t)x->operands[0].mem.disp);
		break;
	}
	cs_free(insn, n);
	return to;
}

/* Decode one function from its start to its end, every byte an instruction. */
static int decode(struct walk *w, struct span f)
{
	uint64_t len = f.hi - f.lo, off = elf_code_offset(w->elf, f.lo);
	uint8_t *code;
	cs_insn *insn = NULL;
	size_t n, done = 0;
	int err = 0;

	if (!off || len == 0 || len > MAX_CODE)
		return -1;
	code = xcalloc(len, 1);
	if (pread(w->fd, code, len, (off_t)off) != (ssize_t)len) {
		free(code);
		return -1;
	}
	n = cs_disasm(w->cs, code, len, f.lo, 0, &insn);
	for (size_t i = 0; i < n && !err; i++) {
		cs_x86 *x = &insn[i].detail->x86;

		done += insn[i].size;
		if (insn[i].id == X86_INS_RET)
			err = add_site(w, insn[i].address);
		else if (cs_insn_group(w->cs, &insn[i], CS_GRP_JUMP) && x->op_count == 1 &&
			 x->operands[0].type == X86_OP_IMM) {
			uint64_t to = (uint64_t)x->operands[0].imm;

			if (to < f.lo || to >= f.hi)
				to = through_plt(w, to);
			if (to < f.lo || to >= f.hi)
				err = to ? add_func(w, to) : -1; /* a tail call */
		} else if (cs_insn_group(w->cs, &insn[i], CS_GRP_JUMP)) {
			err = -1; /* an indirect jump: where it goes is not known */
		}
	}
	if (done != len)
		err = -1;
	cs_free(insn, n);
	free(code);
	return err;
}

int ret_sites(const char *path, uint64_t offset, uint64_t size, uint64_t *sites, int max)
{
	struct walk w = {.sites = sites, .max = max};
	uint64_t vaddr;
	int err = -1;

	elf_version(EV_CURRENT);
	w.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (w.fd < 0)
		return -1;
	w.elf = elf_begin(w.fd, ELF_C_READ_MMAP, NULL);
	if (!w.elf || cs_open(CS_ARCH_X86, CS_MODE_64, &w.cs) != CS_ERR_OK)
		goto out;
	cs_option(w.cs, CS_OPT_DETAIL, CS_OPT_ON);
	elf_fde_index(w.elf, &w.fdes);
	vaddr = elf_code_vaddr(w.elf, offset);
	/* Decoding starts only where a function does, as its unwind table says. */
	if (!vaddr || !size || fde_after(&w.fdes, vaddr) == 0 ||
	    fde_start(&w.fdes, fde_after(&w.fdes, vaddr) - 1) != vaddr)
		goto close;
	w.funcs[w.nfuncs++] = (struct span){.lo = vaddr, .hi = vaddr + size};
	err = 0;
	for (int i = 0; i < w.nfuncs && !err; i++)
		err = decode(&w, w.funcs[i]);
close:
	cs_close(&w.cs);
out:
	if (w.elf)
		elf_end(w.elf);
	close(w.fd);
	return err ? -1 : w.nsites;
}
