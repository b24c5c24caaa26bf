/* Kernel addresses to symbol+offset and module, from /proc/kallsyms. */
#ifndef KALLSYMS_H
#define KALLSYMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "symbolize.h"

struct ksym {
	uint64_t addr;
	char *name;
	char *module; /* "[kernel]" or "[name]" of a module */
};

struct kallsyms {
	struct ksym *syms; /* sorted by address */
	size_t n;
};

/* Returns -1 with errno set if /proc/kallsyms cannot be read. */
int kallsyms_load(struct kallsyms *ks);
void kallsyms_lookup(const struct kallsyms *ks, uint64_t addr, struct frame *f);
bool kallsyms_is_allocator(const char *name);
void kallsyms_free(struct kallsyms *ks);

#endif
