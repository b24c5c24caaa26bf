/* Reading ELF files: function symbols as file offsets, and dynamic dependencies. */
#ifndef ELF_FILE_H
#define ELF_FILE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * For each of names[0..n), the file offset of the function of that name that
 * path defines (in .dynsym or .symtab), or 0 where it defines none.
 * Returns how many were found, or -1 if path is not a readable ELF file.
 */
int elf_func_offsets(const char *path, const char *const *names, int n, uint64_t *offsets);

struct elf_deps {
	char **needed; /* DT_NEEDED sonames */
	int nneeded;
	char *runpath; /* DT_RUNPATH, else DT_RPATH; NULL if neither */
	bool dynamic;  /* has PT_INTERP: loaded by the dynamic linker */
};

int elf_read_deps(const char *path, struct elf_deps *deps);
void elf_deps_free(struct elf_deps *deps);

#endif
