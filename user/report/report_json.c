#include <string.h>

#include "escape.h"
#include "report.h"

static void json_string_or_null(FILE *out, const char *s)
{
	if (s[0])
		put_json(out, s);
	else
		fputs("null", out);
}

static void print_frame(FILE *out, const struct frame *f)
{
	fprintf(out, "{\"addr\":\"0x%llx\",\"symbol\":", (unsigned long long)f->addr);
	json_string_or_null(out, f->symbol);
	fprintf(out, ",\"offset\":%llu,\"module\":", (unsigned long long)f->offset);
	json_string_or_null(out, f->module);
	fputs(",\"file\":", out);
	json_string_or_null(out, f->file);
	if (f->file[0])
		fprintf(out, ",\"line\":%d", f->line);
	else
		fputs(",\"line\":null", out);
	fprintf(out, ",\"inlined\":%s}", f->inlined ? "true" : "false");
}

/* How the stack was walked, and why it ends early if it does. */
static void print_unwind(FILE *out, const struct stack_report *s)
{
	const char *how = "cfi", *cut = unwind_cut_name(s->how);

	if (s->kernel)
		how = "kernel";
	else if ((s->how & UNWIND_FP) && (s->how & UNWIND_CFI))
		how = "mixed";
	else if (s->how & UNWIND_FP)
		how = "fp";
	fprintf(out, "\"unwind\":\"%s\",\"truncated\":", how);
	if (cut)
		fprintf(out, "\"%s\"", cut);
	else
		fputs("null", out);
}

/* A stack's blocks by reachability, in valgrind's kinds. */
static void print_kinds(FILE *out, const struct reach_counts *k)
{
	static const char *const names[REACH_KINDS] = {"lost", "indirect", "possible",
						       "reachable"};

	for (int i = 0; i < REACH_KINDS; i++)
		fprintf(out, "\"%s_bytes\":%llu,\"%s_allocs\":%llu,", names[i],
			(unsigned long long)k->bytes[i], names[i],
			(unsigned long long)k->allocs[i]);
}

static void print_scan(FILE *out, const struct reach_summary *s)
{
	char stamp[40];
	time_t sec = (time_t)s->time;
	struct tm tm;

	gmtime_r(&sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(out, "\"scan\":{\"time\":\"%s.%03dZ\",\"pause_ms\":%.1f,\"scanned_bytes\":%llu,"
		"\"unread_bytes\":%llu,", stamp, (int)((s->time - (double)sec) * 1000), s->pause_ms,
		(unsigned long long)s->scanned_bytes, (unsigned long long)s->unread_bytes);
	print_kinds(out, &s->total);
	fprintf(out, "\"leaked_bytes\":%llu},", (unsigned long long)leaked_bytes(&s->total));
}

static void print_stack(FILE *out, const struct stack_report *s, bool pages)
{
	fputc('{', out);
	if (pages)
		fprintf(out, "\"source\":\"pages\",\"resident_bytes\":%llu,\"pages\":%lld,",
			(unsigned long long)s->out_bytes, pages_in((long long)s->out_bytes));
	fprintf(out,
		"\"outstanding_bytes\":%llu,\"outstanding_allocs\":%llu,\"allocs\":%llu,"
		"\"alloc_bytes\":%llu,\"growth_bytes_per_s\":%.1f,\"oldest_age_s\":%.3f,"
		"\"suspect\":%s,\"kernel\":%s,",
		(unsigned long long)s->out_bytes, (unsigned long long)s->out_allocs,
		(unsigned long long)s->c.allocs, (unsigned long long)s->c.alloc_bytes,
		s->growth_bps, s->oldest_age_s, s->suspect ? "true" : "false",
		s->kernel ? "true" : "false");
	if (s->scanned)
		print_kinds(out, &s->reach);
	print_unwind(out, s);
	fputs(",\"frames\":[", out);
	for (int i = 0; i < s->nframes; i++) {
		if (i)
			fputc(',', out);
		print_frame(out, &s->frames[i]);
	}
	fputs("]}", out);
}

static void print_verdict(FILE *out, const struct verdict *v)
{
	fprintf(out, "\"verdict\":{\"state\":\"%s\",\"growth_bytes_per_s\":%.1f,",
		verdict_name(v->state), v->growth_bps);
	/* null: never steady, no band to leave */
	if (verdict_has_band(v))
		fprintf(out, "\"band_low_bytes\":%.0f,\"band_high_bytes\":%.0f,", v->band_low,
			v->band_high);
	else
		fputs("\"band_low_bytes\":null,\"band_high_bytes\":null,", out);
	fputs("\"left_band_at_s\":", out);
	if (v->left_band_at_s >= 0)
		fprintf(out, "%.1f},", v->left_band_at_s);
	else
		fputs("null},", out);
}

/* exact: blocks from allocator probes; pages: resident pages; watched:
 * only its curve. */
static const char *mode_of(const struct proc_report *p)
{
	return p->pages ? "pages" : p->probed ? "exact" : "watched";
}

static void print_proc(FILE *out, const struct proc_report *p)
{
	const struct counts *c = &p->heap;

	fprintf(out, "{\"pid\":%d,\"comm\":", p->pid);
	put_json(out, p->comm);
	fprintf(out, ",\"mode\":\"%s\"", mode_of(p));
	if (p->pages)
		fprintf(out,
			",\"pages\":{\"resident_bytes\":%lld,\"pages\":%lld,\"counted_pages\":%lld,"
			"\"freed_pages\":%lld}",
			pages_resident(p), pages_in(pages_resident(p)),
			pages_in((long long)c->alloc_bytes), pages_in((long long)c->free_bytes));
	fprintf(out, ",\"watched\":%s,\"probed\":%s", p->watched ? "true" : "false",
		p->probed ? "true" : "false");
	fprintf(out,
		",\"alive\":%s,\"heap\":{\"outstanding_bytes\":%lld,\"outstanding_allocs\":%lld,"
		"\"allocs\":%llu,\"frees\":%llu,\"alloc_bytes\":%llu,\"free_bytes\":%llu},"
		"\"growth_bytes_per_s\":%.1f,\"rss_bytes\":%llu,\"rss_anon_bytes\":%llu,",
		p->alive ? "true" : "false", outstanding_bytes(c), outstanding_allocs(c),
		(unsigned long long)c->allocs, (unsigned long long)c->frees,
		(unsigned long long)c->alloc_bytes, (unsigned long long)c->free_bytes,
		p->growth_bps, p->rss_bytes, p->anon_bytes);
	if (p->has_kernel)
		fprintf(out,
			"\"kernel_bytes\":%lld,\"kernel_allocs\":%lld,"
			"\"kernel_growth_bytes_per_s\":%.1f,",
			outstanding_bytes(&p->kernel), outstanding_allocs(&p->kernel),
			p->kernel_growth_bps);
	print_verdict(out, &p->verdict);
	if (p->scanned)
		print_scan(out, &p->scan);
	fprintf(out,
		"\"stacks_rest\":{\"stacks\":%lld,\"outstanding_bytes\":%lld,"
		"\"outstanding_allocs\":%lld},\"no_stack\":{\"outstanding_bytes\":%lld,"
		"\"outstanding_allocs\":%lld},",
		p->stacks_rest.stacks, p->stacks_rest.bytes, p->stacks_rest.allocs,
		p->no_stack.bytes, p->no_stack.allocs);
	fputs("\"stacks\":[", out);
	for (int i = 0; i < p->nshown; i++) {
		if (i)
			fputc(',', out);
		print_stack(out, &p->stacks[i], p->pages);
	}
	fputs("]}", out);
}

void report_json(FILE *out, const struct report *r)
{
	char stamp[32];
	struct tm tm;

	gmtime_r(&r->wall, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(
	    out,
	    "{\"type\":\"report\",\"seq\":%ld,\"time\":\"%s\",\"elapsed_s\":%.3f,\"cpu_ms\":%.1f,"
	    "\"final\":%s,\"dropped\":{\"events\":%llu,\"allocs_map_full\":%llu,"
	    "\"stacks\":%llu,\"stacks_map_failed\":%llu,\"stack_counts_full\":%llu,"
	    "\"procs_map_full\":%llu,\"lifecycle_map_full\":%llu,\"calls_too_deep\":%llu,"
	    "\"pages_split\":%llu,\"pages_moved\":%llu},"
	    "\"calls_nested\":%llu,\"stack_table\":{\"entries\":%zu,\"reclaimed\":%zu},"
	    "\"unwind_tables\":{\"objects\":%zu,\"rows\":%zu,\"bytes\":%zu,\"no_room\":%llu},"
	    "\"processes\":[",
	    r->seq, stamp, r->elapsed_s, r->cpu_ms, r->final ? "true" : "false",
	    (unsigned long long)r->drops.events, (unsigned long long)r->drops.allocs_map_full,
	    (unsigned long long)r->drops.stacks, (unsigned long long)r->drops.stacks_map_failed,
	    (unsigned long long)r->drops.stack_counts_full,
	    (unsigned long long)r->drops.procs_map_full,
	    (unsigned long long)r->drops.lifecycle_map_full,
	    (unsigned long long)r->drops.calls_too_deep,
	    (unsigned long long)r->drops.pages_split,
	    (unsigned long long)r->drops.pages_moved, r->nested_calls, r->stack_entries,
	    r->stacks_reclaimed, r->unwind.objects, r->unwind.rows,
	    r->unwind.rows * sizeof(struct unwind_row), r->unwind.no_room);
	for (int i = 0; i < r->nprocs; i++) {
		if (i)
			fputc(',', out);
		print_proc(out, &r->procs[i]);
	}
	fputs("]}\n", out);
	fflush(out);
}
