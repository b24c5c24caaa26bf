#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_file.h"
#include "util.h"

static Elf *elf_open(const char *path, int *fd)
{
	Elf *elf;

	elf_version(EV_CURRENT);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return NULL;
	elf = elf_begin(*fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		if (elf)
			elf_end(elf);
		close(*fd);
		return NULL;
	}
	return elf;
}

static void elf_close(Elf *elf, int fd)
{
	elf_end(elf);
	close(fd);
}

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#endif

static bool within(uint64_t off, uint64_t n, uint64_t size, uint64_t filesize)
{
	return off <= filesize && n * size <= filesize - off;
}

static const char *elf_problem(Elf *elf, uint64_t filesize)
{
	GElf_Ehdr eh;

	if (!gelf_getehdr(elf, &eh))
		return "a truncated or corrupt ELF header";
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != HOST_MACHINE)
		return "an ELF file for another architecture";
	if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
		return "not an executable or shared library (an object file or core dump?)";
	if (!within(eh.e_phoff, eh.e_phnum, eh.e_phentsize, filesize) ||
	    !within(eh.e_shoff, eh.e_shnum, eh.e_shentsize, filesize))
		return "a truncated ELF file (its headers point past its end)";
	return NULL;
}

int elf_check(const char *path, char *why, size_t whylen)
{
	struct stat st;
	const char *problem;
	int fd;
	Elf *elf;

	elf_version(EV_CURRENT);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(why, whylen, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	elf = S_ISREG(st.st_mode) ? elf_begin(fd, ELF_C_READ_MMAP, NULL) : NULL;
	if (!S_ISREG(st.st_mode))
		problem = "not a regular file";
	else if (!elf || elf_kind(elf) != ELF_K_ELF)
		problem = st.st_size ? "not an ELF file" : "an empty file";
	else
		problem = elf_problem(elf, (uint64_t)st.st_size);
	if (elf)
		elf_end(elf);
	close(fd);
	if (problem)
		snprintf(why, whylen, "%s", problem);
	return problem ? -1 : 0;
}

/* The executable segment that holds `at`, as a vaddr or as a file offset. */
static bool code_segment(Elf *elf, uint64_t at, bool is_vaddr, GElf_Phdr *ph)
{
	size_t n;

	if (elf_getphdrnum(elf, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		uint64_t start;

		if (!gelf_getphdr(elf, (int)i, ph) || ph->p_type != PT_LOAD ||
		    !(ph->p_flags & PF_X))
			continue;
		start = is_vaddr ? ph->p_vaddr : ph->p_offset;
		if (at >= start && at < start + ph->p_filesz)
			return true;
	}
	return false;
}

uint64_t elf_code_offset(Elf *elf, uint64_t vaddr)
{
	GElf_Phdr ph;

	return code_segment(elf, vaddr, true, &ph) ? vaddr - ph.p_vaddr + ph.p_offset : 0;
}

uint64_t elf_code_vaddr(Elf *elf, uint64_t offset)
{
	GElf_Phdr ph;

	return code_segment(elf, offset, false, &ph) ? offset - ph.p_offset + ph.p_vaddr : 0;
}

/* Only the encoding linkers write is read: version 1, the table's entries
 * 4-byte offsets from the header. */
void elf_fde_index(Elf *elf, struct fde_index *idx)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	*idx = (struct fde_index){0};
	if (elf_getshdrstrndx(elf, &shstrndx))
		return;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		const char *name;
		const uint8_t *h;
		uint32_t n;

		if (!gelf_getshdr(scn, &sh) || !(name = elf_strptr(elf, shstrndx, sh.sh_name)) ||
		    strcmp(name, ".eh_frame_hdr") || !(d = elf_getdata(scn, NULL)) ||
		    d->d_size < 12)
			continue;
		h = d->d_buf;
		if (h[0] != 1 || h[1] != 0x1b || h[2] != 0x03 || h[3] != 0x3b)
			return; /* version 1; pcrel, udata4, datarel sdata4 */
		memcpy(&n, h + 8, 4);
		if (12 + (uint64_t)n * 8 > d->d_size)
			return;
		idx->hdr_vaddr = sh.sh_addr;
		idx->table = (const int32_t *)(h + 12);
		idx->n = n;
		return;
	}
}

uint64_t elf_plt_slot_target(Elf *elf, uint64_t slot)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(elf, scn))) {
		Elf_Data *rel, *syms;
		size_t n;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize)
			continue;
		rel = elf_getdata(scn, NULL);
		syms = elf_getdata(elf_getscn(elf, sh.sh_link), NULL);
		n = rel ? rel->d_size / sh.sh_entsize : 0;
		for (size_t i = 0; i < n && syms; i++) {
			GElf_Rela r;
			GElf_Sym sym;

			if (!gelf_getrela(rel, (int)i, &r) || r.r_offset != slot)
				continue;
			if (GELF_R_TYPE(r.r_info) != R_X86_64_JUMP_SLOT ||
			    !gelf_getsym(syms, (int)GELF_R_SYM(r.r_info), &sym))
				return 0;
			return sym.st_shndx != SHN_UNDEF && GELF_ST_TYPE(sym.st_info) == STT_FUNC
				   ? sym.st_value
				   : 0;
		}
	}
	return 0;
}

size_t fde_after(const struct fde_index *idx, uint64_t vaddr)
{
	size_t lo = 0, hi = idx->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (fde_start(idx, mid) <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void scan_symtab(Elf *elf, Elf_Scn *scn, const char *const *names, int n,
			struct elf_func *funcs)
{
	GElf_Shdr sh;
	Elf_Data *data = elf_getdata(scn, NULL);

	if (!data || !gelf_getshdr(scn, &sh) || !sh.sh_entsize)
		return;
	for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
		GElf_Sym sym;
		const char *name;

		if (!gelf_getsym(data, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    sym.st_shndx == SHN_UNDEF || !sym.st_value)
			continue;
		name = elf_strptr(elf, sh.sh_link, sym.st_name);
		if (!name)
			continue;
		for (int k = 0; k < n; k++) {
			if (funcs[k].offset || strcmp(name, names[k]))
				continue;
			funcs[k].offset = elf_code_offset(elf, sym.st_value);
			funcs[k].size = sym.st_size;
		}
	}
}

int elf_funcs(const char *path, const char *const *names, int n, struct elf_func *funcs)
{
	Elf_Scn *scn = NULL;
	int fd, found = 0;
	Elf *elf = elf_open(path, &fd);

	memset(funcs, 0, sizeof(*funcs) * n);
	if (!elf)
		return -1;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) &&
		    (sh.sh_type == SHT_DYNSYM || sh.sh_type == SHT_SYMTAB))
			scan_symtab(elf, scn, names, n, funcs);
	}
	elf_close(elf, fd);
	for (int k = 0; k < n; k++)
		found += funcs[k].offset != 0;
	return found;
}

static void read_dynamic(Elf *elf, Elf_Scn *scn, struct elf_deps *deps)
{
	GElf_Shdr sh;
	Elf_Data *data = elf_getdata(scn, NULL);
	const char *rpath = NULL, *runpath = NULL;

	if (!data || !gelf_getshdr(scn, &sh) || !sh.sh_entsize)
		return;
	for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
		GElf_Dyn dyn;
		const char *s;

		if (!gelf_getdyn(data, (int)i, &dyn))
			break;
		if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RPATH && dyn.d_tag != DT_RUNPATH)
			continue;
		s = elf_strptr(elf, sh.sh_link, dyn.d_un.d_val);
		if (!s)
			continue;
		if (dyn.d_tag == DT_NEEDED) {
			deps->needed = xrealloc(deps->needed, (deps->nneeded + 1) * sizeof(char *));
			deps->needed[deps->nneeded++] = xstrdup(s);
		} else if (dyn.d_tag == DT_RPATH) {
			rpath = s;
		} else {
			runpath = s;
		}
	}
	if (runpath || rpath)
		deps->runpath = xstrdup(runpath ? runpath : rpath);
}

int elf_read_deps(const char *path, struct elf_deps *deps)
{
	Elf_Scn *scn = NULL;
	size_t nph;
	int fd;
	Elf *elf = elf_open(path, &fd);

	memset(deps, 0, sizeof(*deps));
	if (!elf)
		return -1;
	if (elf_getphdrnum(elf, &nph) == 0) {
		for (size_t i = 0; i < nph; i++) {
			GElf_Phdr ph;

			if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_INTERP)
				deps->dynamic = true;
		}
	}
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_DYNAMIC)
			read_dynamic(elf, scn, deps);
	}
	elf_close(elf, fd);
	return 0;
}

void elf_deps_free(struct elf_deps *deps)
{
	for (int i = 0; i < deps->nneeded; i++)
		free(deps->needed[i]);
	free(deps->needed);
	free(deps->runpath);
	memset(deps, 0, sizeof(*deps));
}
