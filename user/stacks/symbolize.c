#include <dwarf.h>
#include <elfutils/libdw.h>
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

struct map_line {
	unsigned long long start, end;
	const char *text;
	int len;
};

/* The lines of a memory map, sorted by address; *n of them. */
static struct map_line *split_lines(const char *maps, size_t *n)
{
	struct map_line *lines = NULL;

	*n = 0;
	for (const char *l = maps; l && *l; l = strchr(l, '\n'), l += !!l) {
		struct map_line m = {.text = l, .len = (int)strcspn(l, "\n")};

		if (sscanf(l, "%llx-%llx", &m.start, &m.end) != 2)
			continue;
		lines = xrealloc(lines, (*n + 1) * sizeof(*lines));
		lines[(*n)++] = m;
	}
	return lines;
}

static bool overlaps(const struct map_line *m, const struct map_line *lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (m->start < lines[i].end && lines[i].start < m->end)
			return true;
	return false;
}

static int by_start(const void *a, const void *b)
{
	const struct map_line *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Whether the file of a map line is mapped somewhere in lines. */
static bool still_mapped(const struct map_line *m, const struct map_line *lines, size_t n)
{
	const char *path = memchr(m->text, '/', m->len);
	int len = m->len - (int)(path - m->text);

	for (size_t i = 0; i < n; i++) {
		const char *other = memchr(lines[i].text, '/', lines[i].len);

		if (other && lines[i].len - (other - lines[i].text) == len &&
		    memcmp(path, other, len) == 0)
			return true;
	}
	return false;
}

/* The map now, plus the files the old one mapped that are mapped nowhere
 * now, where nothing else is: a library closed since keeps its name for the
 * frames it holds. (A file mapped again elsewhere, as a program after its
 * exec, is known at its new place only: one file at two places would be
 * taken for one module spanning both.) */
static char *with_closed(const char *old, char *now)
{
	size_t nold, nnow, n, len = 0;
	struct map_line *o = split_lines(old, &nold), *cur = split_lines(now, &nnow);
	char *merged, *p;

	n = nnow;
	cur = xrealloc(cur, (nnow + nold + 1) * sizeof(*cur));
	for (size_t i = 0; i < nold; i++) {
		const char *path = memchr(o[i].text, '/', o[i].len);

		if (path && !overlaps(&o[i], cur, nnow) && !still_mapped(&o[i], cur, nnow))
			cur[n++] = o[i];
	}
	if (n == nnow) {
		free(o);
		free(cur);
		return now;
	}
	qsort(cur, n, sizeof(*cur), by_start);
	for (size_t i = 0; i < n; i++)
		len += cur[i].len + 1;
	p = merged = xcalloc(len + 1, 1);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%.*s\n", cur[i].len, cur[i].text);
	free(o);
	free(cur);
	free(now);
	return merged;
}

bool symbolizer_refresh(struct symbolizer *s)
{
	char path[64];
	char *maps;

	snprintf(path, sizeof(path), "/proc/%d/maps", s->pid);
	maps = read_file(path);
	if (!maps)
		return false;
	if (s->maps)
		maps = with_closed(s->maps, maps);
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
	struct frame *f; /* inlined functions first */
	int n;
};

static struct cached_frame *cache;
static size_t cache_used;

/* The file and offset that addr maps to, from the process's memory map,
 * and the mapping that holds it (in f). */
static bool file_offset(const char *maps, uint64_t addr, char *path, size_t len, uint64_t *off,
			struct frame *f)
{
	for (const char *line = maps; line && *line; line = strchr(line, '\n'), line += !!line) {
		unsigned long long start, end, offset;
		int n = 0;

		if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &start, &end, &offset, &n) < 3 ||
		    addr < start || addr >= end || !n || line[n] != '/')
			continue;
		snprintf(path, len, "%.*s", (int)strcspn(line + n, "\n"), line + n);
		*off = addr - start + offset;
		f->map_start = start, f->map_end = end, f->map_offset = offset;
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
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		free(cache[i].path);
		free(cache[i].f);
	}
	memset(cache, 0, CACHE_SLOTS * sizeof(*cache));
	cache_used = 0;
}

static int lookup_dwfl(struct symbolizer *s, uint64_t addr, struct frame **frames);

int symbolizer_frames(struct symbolizer *s, uint64_t addr, struct frame **frames)
{
	struct cached_frame *c;
	struct frame map = {0};
	char path[256];
	uint64_t off;
	int n;

	if (!s->maps || !file_offset(s->maps, addr, path, sizeof(path), &off, &map))
		return lookup_dwfl(s, addr, frames);
	c = cache_slot(path, off);
	if (!c->path) {
		if (cache_used >= CACHE_SLOTS * 3 / 4) {
			cache_clear();
			c = cache_slot(path, off);
		}
		c->n = lookup_dwfl(s, addr, &c->f);
		c->path = xstrdup(path);
		c->off = off;
		cache_used++;
	}
	n = c->n;
	*frames = xcalloc(n, sizeof(**frames));
	memcpy(*frames, c->f, n * sizeof(**frames));
	for (int i = 0; i < n; i++) {
		(*frames)[i].addr = addr;
		(*frames)[i].map_start = map.map_start;
		(*frames)[i].map_end = map.map_end;
		(*frames)[i].map_offset = map.map_offset;
	}
	return n;
}

void symbolizer_lookup(struct symbolizer *s, uint64_t addr, struct frame *f)
{
	struct frame *all;

	symbolizer_frames(s, addr, &all);
	*f = all[0];
	free(all);
}

/* The name of a function's DIE, or of the one it is an instance of. */
static const char *die_name(Dwarf_Die *die)
{
	Dwarf_Attribute a;
	const char *name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &a));

	return name ? name : dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a));
}

/* Where an inlined instance was called from: its caller's file:line. */
static void call_site(Dwarf_Die *cu, Dwarf_Die *inl, struct frame *f)
{
	Dwarf_Attribute a;
	Dwarf_Word file = 0, line = 0;
	Dwarf_Files *files;
	size_t nfiles;
	const char *name = NULL;

	f->file[0] = '\0';
	f->line = 0;
	if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_file, &a), &file) ||
	    dwarf_formudata(dwarf_attr(inl, DW_AT_call_line, &a), &line) ||
	    dwarf_getsrcfiles(cu, &files, &nfiles) || file >= nfiles ||
	    !(name = dwarf_filesrc(files, file, NULL, NULL)))
		return;
	snprintf(f->file, sizeof(f->file), "%s", name);
	f->line = (int)line;
}

/* Split f, the frame at call, into the functions inlined there, innermost
 * first, and the one they were inlined into. */
static int expand_inlined(Dwfl_Module *mod, Dwarf_Addr call, struct frame **frames)
{
	Dwarf_Addr bias;
	Dwarf_Die *cu = dwfl_module_addrdie(mod, call, &bias), *scopes = NULL, inner;
	int nscopes = cu ? dwarf_getscopes(cu, call - bias, &scopes) : 0, n = 1;

	/* Past the innermost inlined instance, dwarf_getscopes climbs its
	 * abstract definition; the DIEs that hold the innermost scope are the
	 * instances it was inlined into, each inside the next. */
	if (nscopes > 0) {
		inner = scopes[0];
		free(scopes);
		scopes = NULL;
		nscopes = dwarf_getscopes_die(&inner, &scopes);
	}
	for (int i = 0; i < nscopes; i++) {
		struct frame *f;
		const char *name;

		if (dwarf_tag(&scopes[i]) != DW_TAG_inlined_subroutine)
			continue;
		*frames = xrealloc(*frames, (n + 1) * sizeof(**frames));
		f = &(*frames)[n - 1];
		(*frames)[n] = *f; /* the caller keeps the symbol's name and offset */
		name = die_name(&scopes[i]);
		if (name)
			set_symbol(f, name);
		f->offset = 0;
		f->inlined = true;
		call_site(cu, &scopes[i], &(*frames)[n]);
		n++;
	}
	free(scopes);
	return n;
}

static void set_build_id(Dwfl_Module *mod, struct frame *f)
{
	const unsigned char *id;
	GElf_Addr at;
	int n = dwfl_module_build_id(mod, &id, &at);

	f->build_id[0] = '\0';
	for (int i = 0; i < n && i < (int)sizeof(f->build_id) / 2; i++)
		sprintf(f->build_id + 2 * i, "%02x", id[i]);
}

static int lookup_dwfl(struct symbolizer *s, uint64_t addr, struct frame **frames)
{
	Dwfl *dwfl = dwfl_of(s);
	Dwfl_Module *mod;
	Dwfl_Line *line;
	const char *name, *file;
	GElf_Off off;
	GElf_Sym sym;
	Dwarf_Addr call = addr - 1;
	struct frame *f = xcalloc(1, sizeof(*f));

	*frames = f;
	f->addr = addr;
	mod = dwfl ? dwfl_addrmodule(dwfl, call) : NULL;
	if (!mod)
		return 1;
	name = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	snprintf(f->module, sizeof(f->module), "%s", name ? name : "");
	name = dwfl_module_addrinfo(mod, call, &off, &sym, NULL, NULL, NULL);
	if (name) {
		set_symbol(f, name);
		f->offset = off + 1;
	}
	set_build_id(mod, f); /* known once the module's ELF file is read */
	line = dwfl_module_getsrc(mod, call);
	file = line ? dwfl_lineinfo(line, NULL, &f->line, NULL, NULL, NULL) : NULL;
	if (file)
		snprintf(f->file, sizeof(f->file), "%s", file);
	else
		f->line = 0;
	return expand_inlined(mod, call, frames);
}

void symbolizer_free(struct symbolizer *s)
{
	if (s->dwfl)
		dwfl_end(s->dwfl);
	free(s->maps);
	memset(s, 0, sizeof(*s));
}
