#include <capstone/capstone.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "probe_site.h"
#include "util.h"

#define MAX_CODE     (1 << 16) /* bytes of one function decoded at most */
#define MAX_PROLOGUE 8	       /* instructions looked past for a site */

/* What the kernel emulates at a probe (arch/x86/kernel/uprobes.c): a push
 * of a register, relative jmp, jcc and call, nop. Anything else it runs out
 * of line, single-stepped: two more traps. */
static bool emulated(const cs_insn *in)
{
	const uint8_t *b = in->bytes;

	switch (in->size) {
	case 1:
		return b[0] == 0x90 || (b[0] >= 0x50 && b[0] <= 0x57);
	case 2:
		return (b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57) ||
		       (b[0] >= 0x70 && b[0] <= 0x7f) || b[0] == 0xeb;
	case 5:
		return b[0] == 0xe8 || b[0] == 0xe9;
	case 6:
		return b[0] == 0x0f && b[1] >= 0x80 && b[1] <= 0x8f;
	}
	return false;
}

/* The 64-bit register a register is part of. */
static x86_reg full_reg(x86_reg r)
{
	static const x86_reg families[][5] = {
	    {X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL},
	    {X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL},
	    {X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL, X86_REG_DH},
	    {X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL, X86_REG_CH},
	    {X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B},
	    {X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B},
	    {X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(families); i++)
		for (size_t k = 0; k < 5 && families[i][k]; k++)
			if (families[i][k] == r)
				return families[i][0];
	return r;
}

/* Whether running past in leaves the first nargs arguments and the stack
 * pointer as they were, and goes on to the next instruction. */
static bool harmless(csh cs, const cs_insn *in, int nargs)
{
	static const x86_reg args[] = {X86_REG_RDI, X86_REG_RSI, X86_REG_RDX,
				       X86_REG_RCX, X86_REG_R8,	 X86_REG_R9};
	cs_regs rd, wr;
	uint8_t nrd, nwr;

	if (cs_insn_group(cs, in, CS_GRP_JUMP) || cs_insn_group(cs, in, CS_GRP_CALL) ||
	    cs_insn_group(cs, in, CS_GRP_RET) || cs_insn_group(cs, in, CS_GRP_INT) ||
	    cs_insn_group(cs, in, CS_GRP_IRET) || in->detail->x86.prefix[0] /* lock, rep */)
		return false;
	if (cs_regs_access(cs, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return false;
	for (int i = 0; i < nwr; i++) {
		x86_reg r = full_reg(wr[i]);

		if (r == X86_REG_RSP || r == X86_REG_RIP)
			return false;
		for (int k = 0; k < nargs && k < (int)ARRAY_SIZE(args); k++)
			if (r == args[k])
				return false;
	}
	return true;
}

/* Whether a direct branch among insn[0..n) lands in (lo, hi]. */
static bool lands_in(csh cs, const cs_insn *insn, size_t n, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < n; i++) {
		const cs_x86 *x = &insn[i].detail->x86;

		if ((cs_insn_group(cs, &insn[i], CS_GRP_JUMP) ||
		     cs_insn_group(cs, &insn[i], CS_GRP_CALL)) &&
		    x->op_count == 1 && x->operands[0].type == X86_OP_IMM &&
		    (uint64_t)x->operands[0].imm > lo && (uint64_t)x->operands[0].imm <= hi)
			return true;
	}
	return false;
}

static uint64_t site_in(csh cs, const uint8_t *code, uint64_t size, uint64_t offset, int nargs)
{
	cs_insn *insn = NULL;
	size_t n = cs_disasm(cs, code, size, offset, 0, &insn), used = 0;
	uint64_t site = offset;

	for (size_t i = 0; i < n; i++)
		used += insn[i].size;
	for (size_t i = 0; i < n && i < MAX_PROLOGUE; i++) {
		if (emulated(&insn[i])) {
			site = insn[i].address;
			break;
		}
		if (!harmless(cs, &insn[i], nargs))
			break;
	}
	/* The whole function decoded, and nothing jumps into the part skipped. */
	if (site != offset && (used != size || lands_in(cs, insn, n, offset, site)))
		site = offset;
	cs_free(insn, n);
	return site;
}

uint64_t probe_site(const char *path, uint64_t offset, uint64_t size, int nargs)
{
	uint64_t site = offset;
	uint8_t *code;
	int fd;

	if (!size || size > MAX_CODE)
		return offset;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return offset;
	code = xcalloc(size, 1);
	if (pread(fd, code, size, (off_t)offset) == (ssize_t)size)
		site = probe_site_code(code, size, offset, nargs);
	free(code);
	close(fd);
	return site;
}

uint64_t probe_site_code(const uint8_t *code, uint64_t size, uint64_t offset, int nargs)
{
	uint64_t site = offset;
	csh cs;

	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return offset;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	site = site_in(cs, code, size, offset, nargs);
	cs_close(&cs);
	return site;
}
