#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "symbolize.h"
#include "util.h"

/* From the C++ runtime's ABI, callable from C. */
char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
};

void symbolizer_init(struct symbolizer *s, pid_t pid)
{
	memset(s, 0, sizeof(*s));
	s->pid = pid;
}

static char *read_file(const char *path)
{
	char buf[65536];
	char *text = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		text = xrealloc(text, len + n + 1);
		memcpy(text + len, buf, n);
		len += n;
	}
	close(fd);
	if (text)
		text[len] = '\0';
	return text;
}

bool symbolizer_refresh(struct symbolizer *s)
{
	char path[64];
	char *maps;

	snprintf(path, sizeof(path), "/proc/%d/maps", s->pid);
	maps = read_file(path);
	if (!maps)
		return false;
	if (s->maps && strcmp(s->maps, maps) == 0) {
		free(maps);
		return true;
	}
	free(s->maps);
	s->maps = maps;
	if (s->dwfl) {
		dwfl_end(s->dwfl);
		s->dwfl = NULL;
	}
	return true;
}

static Dwfl *dwfl_of(struct symbolizer *s)
{
	FILE *f;

	if (s->dwfl || !s->maps)
		return s->dwfl;
	s->dwfl = dwfl_begin(&callbacks);
	if (!s->dwfl)
		return NULL;
	f = fmemopen(s->maps, strlen(s->maps), "r");
	if (f) {
		dwfl_report_begin(s->dwfl);
		dwfl_linux_proc_maps_report(s->dwfl, f);
		dwfl_report_end(s->dwfl, NULL, NULL);
		fclose(f);
	}
	return s->dwfl;
}

static void set_symbol(struct frame *f, const char *name)
{
	int status = -1;
	char *demangled =
	    name[0] == '_' && name[1] == 'Z' ? __cxa_demangle(name, NULL, NULL, &status) : NULL;

	snprintf(f->symbol, sizeof(f->symbol), "%s", status == 0 ? demangled : name);
	free(demangled);
}

/*
 * A frame is the same in every process that maps the same file: the cache,
 * keyed by (file, offset in it), spares most lookups the building of a
 * process's Dwfl, which system-wide tracing of many short-lived processes of
 * the same programs would otherwise repeat for each.
 */
#define CACHE_SLOTS 8192

struct cached_frame {
	char *path; /* NULL: a free slot */
	uint64_t off;
	struct frame f;
};

static struct cached_frame *cache;
static size_t cache_used;

/* The file and offset that addr maps to, from the process's memory map. */
static bool file_offset(const char *maps, uint64_t addr, char *path, size_t len, uint64_t *off)
{
	for (const char *line = maps; line && *line; line = strchr(line, '\n'), line += !!line) {
		unsigned long long start, end, offset;
		int n = 0;

		if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &start, &end, &offset, &n) < 3 ||
		    addr < start || addr >= end || !n || line[n] != '/')
			continue;
		snprintf(path, len, "%.*s", (int)strcspn(line + n, "\n"), line + n);
		*off = addr - start + offset;
		return true;
	}
	return false;
}

static struct cached_frame *cache_slot(const char *path, uint64_t off)
{
	uint64_t h = off * 0x9e3779b97f4a7c15ULL;

	if (!cache)
		cache = xcalloc(CACHE_SLOTS, sizeof(*cache));
	for (const char *c = path; *c; c++)
		h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
	for (size_t i = h % CACHE_SLOTS;; i = (i + 1) % CACHE_SLOTS)
		if (!cache[i].path || (cache[i].off == off && !strcmp(cache[i].path, path)))
			return &cache[i];
}

static void cache_clear(void)
{
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		free(cache[i].path);
	memset(cache, 0, CACHE_SLOTS * sizeof(*cache));
	cache_used = 0;
}

static void lookup_dwfl(struct symbolizer *s, uint64_t addr, struct frame *f);

void symbolizer_lookup(struct symbolizer *s, uint64_t addr, struct frame *f)
{
	struct cached_frame *c;
	char path[256];
	uint64_t off;

	if (!s->maps || !file_offset(s->maps, addr, path, sizeof(path), &off)) {
		lookup_dwfl(s, addr, f);
		return;
	}
	c = cache_slot(path, off);
	if (c->path) {
		*f = c->f;
		f->addr = addr;
		return;
	}
	lookup_dwfl(s, addr, f);
	if (cache_used >= CACHE_SLOTS * 3 / 4) {
		cache_clear();
		c = cache_slot(path, off);
	}
	c->path = xstrdup(path);
	c->off = off;
	c->f = *f;
	cache_used++;
}

static void lookup_dwfl(struct symbolizer *s, uint64_t addr, struct frame *f)
{
	Dwfl *dwfl = dwfl_of(s);
	Dwfl_Module *mod;
	Dwfl_Line *line;
	const char *name, *file;
	GElf_Off off;
	GElf_Sym sym;
	Dwarf_Addr call = addr - 1;

	memset(f, 0, sizeof(*f));
	f->addr = addr;
	mod = dwfl ? dwfl_addrmodule(dwfl, call) : NULL;
	if (!mod)
		return;
	name = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	snprintf(f->module, sizeof(f->module), "%s", name ? name : "");
	name = dwfl_module_addrinfo(mod, call, &off, &sym, NULL, NULL, NULL);
	if (name) {
		set_symbol(f, name);
		f->offset = off + 1;
	}
	line = dwfl_module_getsrc(mod, call);
	file = line ? dwfl_lineinfo(line, NULL, &f->line, NULL, NULL, NULL) : NULL;
	if (file)
		snprintf(f->file, sizeof(f->file), "%s", file);
	else
		f->line = 0;
}

void symbolizer_free(struct symbolizer *s)
{
	if (s->dwfl)
		dwfl_end(s->dwfl);
	free(s->maps);
	memset(s, 0, sizeof(*s));
}
