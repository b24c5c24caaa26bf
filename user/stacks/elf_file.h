/* Reading ELF files: function symbols as file offsets, and dynamic dependencies. */
#ifndef ELF_FILE_H
#define ELF_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libelf.h>

/* In an executable segment of elf: the file offset of a vaddr, the vaddr of
 * a file offset; 0 if none holds it. */
uint64_t elf_code_offset(Elf *elf, uint64_t vaddr);
uint64_t elf_code_vaddr(Elf *elf, uint64_t offset);

/* Where every function with unwind information starts, sorted: the search
 * table of .eh_frame_hdr. */
struct fde_index {
	uint64_t hdr_vaddr;   /* the header's */
	const int32_t *table; /* (function start, FDE) pairs, relative to the header */
	size_t n;	      /* 0: no table (none, or an encoding linkers do not write) */
};

void elf_fde_index(Elf *elf, struct fde_index *idx);

/* The function a PLT entry's GOT slot (its vaddr) is bound to, when the
 * object defines it itself (a call to one of its own exported functions):
 * its vaddr, else 0. */
uint64_t elf_plt_slot_target(Elf *elf, uint64_t slot);

static inline uint64_t fde_start(const struct fde_index *idx, size_t i)
{
	return idx->hdr_vaddr + (int64_t)idx->table[2 * i];
}

/* The index of the first function starting after vaddr (n: none). */
size_t fde_after(const struct fde_index *idx, uint64_t vaddr);

struct elf_func {
	uint64_t offset; /* in the file; 0: not defined there */
	uint64_t size;	 /* bytes of code, as the symbol says */
};

/*
 * For each of names[0..n), the function of that name that path defines (in
 * .dynsym or .symtab). Returns how many were found, or -1 if path is not a
 * readable ELF file.
 */
int elf_funcs(const char *path, const char *const *names, int n, struct elf_func *funcs);

/* Whether path is an ELF executable or shared library this machine can run,
 * whole: 0, or -1 with what is wrong with it in why. */
int elf_check(const char *path, char *why, size_t whylen);

struct elf_deps {
	char **needed; /* DT_NEEDED sonames */
	int nneeded;
	char *runpath; /* DT_RUNPATH, else DT_RPATH; NULL if neither */
	bool dynamic;  /* has PT_INTERP: loaded by the dynamic linker */
};

int elf_read_deps(const char *path, struct elf_deps *deps);
void elf_deps_free(struct elf_deps *deps);

#endif
