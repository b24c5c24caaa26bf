/*
 * --pprof: the outstanding heap as a gzipped profile.proto, the format of
 * Google's pprof (go tool pprof, Pyroscope, Parca). Encoded by protobuf-c
 * from the official profile.proto; compressed by zlib.
 *
 * Samples: one per (process, stack), labelled pid and comm, plus one per
 * process for what no listed stack holds, so that each process's samples sum
 * to its heap. A location is one return address of one process; functions
 * inlined there are its lines, innermost first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "outfile.h"
#include "profile.pb-c.h"
#include "report.h"
#include "util.h"

typedef Perftools__Profiles__Profile Profile;
typedef Perftools__Profiles__Sample Sample;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Line Line;
typedef Perftools__Profiles__Function Function;
typedef Perftools__Profiles__Mapping Mapping;
typedef Perftools__Profiles__Label Label;
typedef Perftools__Profiles__ValueType ValueType;

/* Open addressing from a pair of keys to an id (1 up); slots a power of two. */
struct table {
	struct slot {
		uint64_t a, b, id;
	} * slots;
	size_t nslots, n;
};

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL;

	return h ^ (h >> 31);
}

static struct slot *table_slot(struct table *t, uint64_t a, uint64_t b)
{
	if ((t->n + 1) * 2 > t->nslots) {
		struct table bigger = {.nslots = t->nslots ? t->nslots * 2 : 1024};

		bigger.slots = xcalloc(bigger.nslots, sizeof(*bigger.slots));
		for (size_t i = 0; i < t->nslots; i++) {
			struct slot *s = &t->slots[i];

			if (s->id)
				*table_slot(&bigger, s->a, s->b) = *s, bigger.n++;
		}
		free(t->slots);
		*t = bigger;
	}
	for (size_t i = mix(a, b) & (t->nslots - 1);; i = (i + 1) & (t->nslots - 1)) {
		struct slot *s = &t->slots[i];

		if (!s->id || (s->a == a && s->b == b))
			return s;
	}
}

struct pprof {
	Profile *p;	      /* freed with everything in it */
	struct table strings; /* (hash, length) -> 1 + index: equal strings checked */
	struct table functions, locations, mappings;
};

static uint64_t hash_string(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static int64_t string_id(struct pprof *pp, const char *s)
{
	uint64_t h = hash_string(s), len = strlen(s);

	/* Strings of one hash and length, told apart by a second key. */
	for (uint64_t k = len;; k += 1ULL << 32) {
		struct slot *slot = table_slot(&pp->strings, h, k);

		if (slot->id && strcmp(pp->p->string_table[slot->id - 1], s))
			continue;
		if (!slot->id) {
			pp->p->string_table = xrealloc(
			    pp->p->string_table, (pp->p->n_string_table + 1) * sizeof(char *));
			pp->p->string_table[pp->p->n_string_table++] = xstrdup(s);
			*slot = (struct slot){h, k, pp->p->n_string_table};
			pp->strings.n++;
		}
		return (int64_t)slot->id - 1;
	}
}

#define APPEND(arr, n, item)                                                                       \
	do {                                                                                       \
		(arr) = xrealloc((arr), ((n) + 1) * sizeof(*(arr)));                               \
		(arr)[(n)++] = (item);                                                             \
	} while (0)

static ValueType *value_type(struct pprof *pp, const char *type, const char *unit)
{
	ValueType *v = xcalloc(1, sizeof(*v));

	perftools__profiles__value_type__init(v);
	v->type = string_id(pp, type);
	v->unit = string_id(pp, unit);
	return v;
}

static uint64_t function_id(struct pprof *pp, const char *name, const char *file)
{
	int64_t n = string_id(pp, name), f = string_id(pp, file);
	struct slot *s = table_slot(&pp->functions, (uint64_t)n, (uint64_t)f);
	Function *fn;

	if (s->id)
		return s->id;
	fn = xcalloc(1, sizeof(*fn));
	perftools__profiles__function__init(fn);
	fn->id = pp->p->n_function + 1;
	fn->name = fn->system_name = n;
	fn->filename = f;
	APPEND(pp->p->function, pp->p->n_function, fn);
	*s = (struct slot){(uint64_t)n, (uint64_t)f, fn->id};
	pp->functions.n++;
	return fn->id;
}

static uint64_t mapping_id(struct pprof *pp, int pid, const struct frame *f, bool kernel)
{
	struct slot *s;
	Mapping *m;

	if (!kernel && !f->map_end)
		return 0;
	s = table_slot(&pp->mappings, (uint64_t)pid, kernel ? 0 : f->map_start);
	if (s->id)
		return s->id;
	m = xcalloc(1, sizeof(*m));
	perftools__profiles__mapping__init(m);
	m->id = pp->p->n_mapping + 1;
	if (kernel) {
		m->filename = string_id(pp, "[kernel.kallsyms]");
		m->memory_limit = UINT64_MAX;
	} else {
		m->memory_start = f->map_start;
		m->memory_limit = f->map_end;
		m->file_offset = f->map_offset;
		m->filename = string_id(pp, f->module);
		m->build_id = string_id(pp, f->build_id);
		m->has_inline_frames = true;
	}
	m->has_functions = m->has_filenames = m->has_line_numbers = true;
	APPEND(pp->p->mapping, pp->p->n_mapping, m);
	*s = (struct slot){(uint64_t)pid, kernel ? 0 : f->map_start, m->id};
	pp->mappings.n++;
	return m->id;
}

static void add_line(Location *loc, uint64_t function, int64_t line)
{
	Line *l = xcalloc(1, sizeof(*l));

	perftools__profiles__line__init(l);
	l->function_id = function;
	l->line = line;
	APPEND(loc->line, loc->n_line, l);
}

/*
 * The location of frames[0..n): one address, the functions inlined there
 * first. A frame without a symbol has no line: pprof shows its address.
 * With no frames, the process's location for what no listed stack holds.
 */
static uint64_t location_id(struct pprof *pp, int pid, bool kernel, const struct frame *frames,
			    int n)
{
	uint64_t key = (uint64_t)(unsigned)pid << 1 | kernel, addr = n ? frames[0].addr : 0;
	struct slot *s = table_slot(&pp->locations, key, addr);
	Location *loc;

	if (s->id)
		return s->id;
	loc = xcalloc(1, sizeof(*loc));
	perftools__profiles__location__init(loc);
	loc->id = pp->p->n_location + 1;
	loc->address = addr;
	if (!n)
		add_line(loc, function_id(pp, "[no stack listed]", ""), 0);
	else
		loc->mapping_id = mapping_id(pp, pid, &frames[0], kernel);
	for (int i = 0; i < n; i++)
		if (frames[i].symbol[0])
			add_line(loc, function_id(pp, frames[i].symbol, frames[i].file),
				 frames[i].line);
	APPEND(pp->p->location, pp->p->n_location, loc);
	*s = (struct slot){key, addr, loc->id};
	pp->locations.n++;
	return loc->id;
}

static Label *label(struct pprof *pp, const char *key, const char *str, int64_t num)
{
	Label *l = xcalloc(1, sizeof(*l));

	perftools__profiles__label__init(l);
	l->key = string_id(pp, key);
	if (str)
		l->str = string_id(pp, str);
	else
		l->num = num;
	return l;
}

/* Values in the order of the sample types: alloc_objects, alloc_space,
 * inuse_objects, inuse_space, lost_objects, lost_space. */
#define VALUES 6

static Sample *sample(struct pprof *pp, const struct proc_report *p, bool kernel,
		      const int64_t values[VALUES])
{
	Sample *s = xcalloc(1, sizeof(*s));

	perftools__profiles__sample__init(s);
	s->value = xcalloc(VALUES, sizeof(*s->value));
	memcpy(s->value, values, VALUES * sizeof(*s->value));
	s->n_value = VALUES;
	APPEND(s->label, s->n_label, label(pp, "pid", NULL, p->pid));
	APPEND(s->label, s->n_label, label(pp, "comm", p->comm, 0));
	if (kernel)
		APPEND(s->label, s->n_label, label(pp, "kernel", "true", 0));
	APPEND(pp->p->sample, pp->p->n_sample, s);
	return s;
}

static void add_stack(struct pprof *pp, const struct proc_report *p, const struct stack_report *st)
{
	const struct stack_report *c = st;
	int64_t v[VALUES] = {(int64_t)c->c.allocs, (int64_t)c->c.alloc_bytes,
			     (int64_t)c->out_allocs, (int64_t)c->out_bytes,
			     (int64_t)leaked_allocs(&c->reach), (int64_t)leaked_bytes(&c->reach)};
	Sample *s = sample(pp, p, st->kernel, v);

	for (int i = 0; i < st->nframes;) {
		int n = 1;

		while (i + n < st->nframes && st->frames[i + n - 1].inlined)
			n++;
		APPEND(s->location_id, s->n_location_id,
		       location_id(pp, p->pid, st->kernel, &st->frames[i], n));
		i += n;
	}
	if (!st->nframes) /* its frames could not be read */
		APPEND(s->location_id, s->n_location_id,
		       location_id(pp, p->pid, st->kernel, NULL, 0));
}

static void add_proc(struct pprof *pp, const struct proc_report *p)
{
	struct unlisted u = proc_unlisted(p);
	/* What the scan found unreachable in no listed stack. */
	int64_t lost_allocs = (int64_t)leaked_allocs(&p->scan.total);
	int64_t lost_bytes = (int64_t)leaked_bytes(&p->scan.total);

	for (int i = 0; i < p->nstacks; i++) {
		add_stack(pp, p, &p->stacks[i]);
		lost_allocs -= (int64_t)leaked_allocs(&p->stacks[i].reach);
		lost_bytes -= (int64_t)leaked_bytes(&p->stacks[i].reach);
	}
	if (u.bytes > 0 || u.alloc_count || lost_bytes > 0) {
		int64_t v[VALUES] = {(int64_t)u.alloc_count, (int64_t)u.alloc_bytes, u.allocs, u.bytes,
				     lost_allocs, lost_bytes};
		Sample *s = sample(pp, p, false, v);

		APPEND(s->location_id, s->n_location_id, location_id(pp, p->pid, false, NULL, 0));
	}
	if (u.kernel_bytes > 0) {
		int64_t v[VALUES] = {0, 0, u.kernel_allocs, u.kernel_bytes, 0, 0};
		Sample *s = sample(pp, p, true, v);

		APPEND(s->location_id, s->n_location_id, location_id(pp, p->pid, true, NULL, 0));
	}
}

static int write_gzip(const char *path, const uint8_t *data, size_t len)
{
	z_stream z = {0};
	uLong cap = compressBound(len) + 64;
	uint8_t *out = xcalloc(cap, 1);
	struct outfile of;
	int err = 0;

	/* windowBits 15 + 16: a gzip header and trailer, as pprof reads. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY)) {
		free(out);
		errno = ENOMEM;
		return -1;
	}
	z.next_in = (Bytef *)data, z.avail_in = (uInt)len;
	z.next_out = out, z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		err = -1, errno = EIO;
	deflateEnd(&z);
	if (!err && !(err = outfile_open(&of, path))) {
		fwrite(out, 1, z.total_out, of.f);
		err = outfile_commit(&of);
	}
	free(out);
	return err;
}

static void pprof_free(struct pprof *pp)
{
	/* Every message and array was allocated here: unpacked messages free
	 * themselves the same way. */
	protobuf_c_message_free_unpacked(&pp->p->base, NULL);
	free(pp->strings.slots);
	free(pp->functions.slots);
	free(pp->locations.slots);
	free(pp->mappings.slots);
}

int report_pprof(const char *path, const struct report *r)
{
	static const char *const types[VALUES][2] = {
	    {"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"},
	    {"inuse_space", "bytes"},	{"lost_objects", "count"}, {"lost_space", "bytes"}};
	struct pprof pp = {0};
	uint8_t *buf;
	size_t len;
	int err;

	pp.p = xcalloc(1, sizeof(*pp.p));
	perftools__profiles__profile__init(pp.p);
	string_id(&pp, ""); /* string 0 is the empty string */
	for (int i = 0; i < VALUES; i++)
		APPEND(pp.p->sample_type, pp.p->n_sample_type,
		       value_type(&pp, types[i][0], types[i][1]));
	pp.p->default_sample_type = string_id(&pp, "inuse_space");
	pp.p->time_nanos = (int64_t)r->wall * 1000000000;
	pp.p->duration_nanos = (int64_t)(r->elapsed_s * 1e9);
	for (int i = 0; i < r->nprocs; i++)
		if (r->procs[i].probed || r->procs[i].pages || r->procs[i].has_kernel)
			add_proc(&pp, &r->procs[i]);
	len = perftools__profiles__profile__get_packed_size(pp.p);
	buf = xcalloc(len ? len : 1, 1);
	perftools__profiles__profile__pack(pp.p, buf);
	pprof_free(&pp);
	err = write_gzip(path, buf, len);
	free(buf);
	return err;
}
