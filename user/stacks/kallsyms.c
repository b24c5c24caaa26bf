#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kallsyms.h"
#include "util.h"

static int by_addr(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static bool is_text(char type)
{
	return type == 't' || type == 'T' || type == 'w' || type == 'W';
}

int kallsyms_load(struct kallsyms *ks)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	char line[512], name[256], module[128];
	unsigned long long addr;
	size_t cap = 0;
	char type;

	memset(ks, 0, sizeof(*ks));
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		module[0] = '\0';
		if (sscanf(line, "%llx %c %255s %127s", &addr, &type, name, module) < 3 ||
		    !is_text(type) || !addr)
			continue;
		if (ks->n == cap) {
			cap = cap ? cap * 2 : 65536;
			ks->syms = xrealloc(ks->syms, cap * sizeof(*ks->syms));
		}
		ks->syms[ks->n].addr = addr;
		ks->syms[ks->n].name = xstrdup(name);
		ks->syms[ks->n].module = xstrdup(module[0] ? module : "[kernel]");
		ks->n++;
	}
	fclose(f);
	qsort(ks->syms, ks->n, sizeof(*ks->syms), by_addr);
	return 0;
}

void kallsyms_lookup(const struct kallsyms *ks, uint64_t addr, struct frame *f)
{
	size_t lo = 0, hi = ks->n;

	memset(f, 0, sizeof(*f));
	f->addr = addr;
	while (lo < hi) { /* the last symbol at or below addr */
		size_t mid = (lo + hi) / 2;

		if (ks->syms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0) {
		snprintf(f->module, sizeof(f->module), "[kernel]");
		return;
	}
	snprintf(f->symbol, sizeof(f->symbol), "%s", ks->syms[lo - 1].name);
	snprintf(f->module, sizeof(f->module), "%s", ks->syms[lo - 1].module);
	f->offset = addr - ks->syms[lo - 1].addr;
}

/* The tracer's own frames and the kernel allocator's, which a report leaves out. */
bool kallsyms_is_allocator(const char *name)
{
	static const char *const prefixes[] = {
	    "bpf_",
	    "__bpf_",
	    "alloc_pages",
	    "__alloc_pages",
	    "alloc_frozen_pages",
	    "__alloc_frozen_pages",
	    "folio_alloc",
	    "__folio_alloc",
	    "get_free_pages",
	    "__get_free_pages",
	    "kmalloc",
	    "__kmalloc",
	    "kmem_cache_alloc",
	    "__kmem_cache_alloc",
	    "slab_alloc",
	    "__slab_alloc",
	    "___slab_alloc",
	    "kvmalloc",
	    "__kvmalloc",
	    "pcpu_alloc",
	    "__alloc_percpu",
	    "trace_",
	    "__traceiter_",
	    "krealloc",
	    "__krealloc",
	    "kzalloc",
	    "kcalloc",
	};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

void kallsyms_free(struct kallsyms *ks)
{
	for (size_t i = 0; i < ks->n; i++) {
		free(ks->syms[i].name);
		free(ks->syms[i].module);
	}
	free(ks->syms);
	memset(ks, 0, sizeof(*ks));
}
