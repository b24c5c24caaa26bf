/* --folded: outstanding bytes as folded stacks, root first, one line per
 * (process, stack): the input of flamegraph.pl, inferno and speedscope. */
#include <string.h>

#include "outfile.h"
#include "report.h"

/* A frame as one field: no ';' (the separator) and no line break. */
static void put_frame(FILE *f, const struct frame *fr, bool kernel)
{
	const char *name = fr->symbol, *base = strrchr(fr->module, '/');

	if (!name[0]) {
		fprintf(f, "[%s]", base ? base + 1 : fr->module[0] ? fr->module : "unknown");
	} else {
		for (const char *c = name; *c; c++)
			fputc(*c == ';' || *c == '\n' ? '_' : *c, f);
	}
	if (kernel)
		fputs("_[k]", f);
}

static void put_comm(FILE *f, const struct proc_report *p)
{
	for (const char *c = p->comm; *c; c++)
		fputc(*c == ';' || *c == '\n' || *c == ' ' ? '_' : *c, f);
}

static void put_stack(FILE *f, const struct proc_report *p, const struct stack_report *s)
{
	put_comm(f, p);
	for (int i = s->nframes - 1; i >= 0; i--) {
		fputc(';', f);
		put_frame(f, &s->frames[i], s->kernel);
	}
	fprintf(f, " %llu\n", (unsigned long long)s->out_bytes);
}

static void put_line(FILE *f, const struct proc_report *p, const char *what, long long bytes)
{
	if (bytes <= 0)
		return;
	put_comm(f, p);
	fprintf(f, ";%s %lld\n", what, bytes);
}

static void put_proc(FILE *f, const struct proc_report *p)
{
	struct unlisted u = proc_unlisted(p);

	for (int i = 0; i < p->nstacks; i++)
		if (p->stacks[i].out_bytes)
			put_stack(f, p, &p->stacks[i]);
	put_line(f, p, "[no stack listed]", u.bytes);
	put_line(f, p, "[no stack listed]_[k]", u.kernel_bytes);
}

int report_folded(const char *path, const struct report *r)
{
	struct outfile out;

	if (outfile_open(&out, path))
		return -1;
	for (int i = 0; i < r->nprocs; i++)
		if (r->procs[i].probed || r->procs[i].pages)
			put_proc(out.f, &r->procs[i]);
	return outfile_commit(&out);
}
