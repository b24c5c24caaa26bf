#include <string.h>

#include "escape.h"
#include "memleak.h"
#include "report.h"
#include "util.h"

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static void print_frame(FILE *out, const struct frame *f)
{
	fputs("        ", out);
	if (f->symbol[0]) {
		put_text(out, f->symbol);
		fprintf(out, "+0x%llx", (unsigned long long)f->offset);
	} else {
		fprintf(out, "0x%llx", (unsigned long long)f->addr);
	}
	if (f->file[0]) {
		fputs("  ", out);
		put_text(out, basename_of(f->file));
		fprintf(out, ":%d", f->line);
	}
	fputs("  (", out);
	put_text(out, f->module[0] ? f->module : "?");
	fputs(f->inlined ? ")  inlined\n" : ")\n", out);
}

/* A scan's kinds: those leaked (lost, indirect) and possible, or all. */
static void print_kinds(FILE *out, const struct reach_counts *k, bool all)
{
	static const char *const names[REACH_KINDS] = {"lost", "indirect", "possible",
						       "reachable"};
	char bytes[32], n[32];

	for (int i = 0; i < REACH_KINDS; i++) {
		if (!k->allocs[i] || (!all && i == REACH_REACHABLE))
			continue;
		fprintf(out, "%s%s %s B in %s", all ? (i ? ", " : ": ") : "  ", names[i],
			group_digits(k->bytes[i], bytes, sizeof(bytes)),
			group_digits(k->allocs[i], n, sizeof(n)));
	}
}

static void print_stack(FILE *out, const struct stack_report *s, bool pages)
{
	char n[32], bytes[32], rate[32];

	if (pages)
		fprintf(out, "    %s B resident in %s page%s",
			group_digits(s->out_bytes, bytes, sizeof(bytes)),
			group_digits(pages_in((long long)s->out_bytes), n, sizeof(n)),
			pages_in((long long)s->out_bytes) == 1 ? "" : "s");
	else
		fprintf(out, "    %s B in %s allocs",
			group_digits(s->out_bytes, bytes, sizeof(bytes)),
			group_digits(s->out_allocs, n, sizeof(n)));
	fprintf(out, "  %s%s/s  oldest %.1f s%s%s", s->growth_bps >= 0 ? "+" : "",
		human_bytes(s->growth_bps, rate, sizeof(rate)), s->oldest_age_s,
		s->kernel ? "  kernel" : "", s->suspect ? "  suspect" : "");
	if (s->scanned)
		print_kinds(out, &s->reach, false);
	fputc('\n', out);
	for (int i = 0; i < s->nframes; i++)
		print_frame(out, &s->frames[i]);
	if (!s->kernel && unwind_cut_name(s->how))
		fprintf(out, "        ... (the stack goes on: %s)\n", unwind_cut_name(s->how));
}

const char *unwind_cut_name(__u32 how)
{
	static const struct {
		__u32 bit;
		const char *name;
	} cuts[] = {
	    {UNWIND_CUT_DEPTH, "depth"},	  {UNWIND_CUT_READ, "unreadable"},
	    {UNWIND_CUT_TABLE, "no_table"},	  {UNWIND_CUT_BUSY, "map_busy"},
	    {UNWIND_CUT_PROBED, "probed_return"}, {UNWIND_CUT_CALLER, "caller_lost"},
	};

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		if (how & cuts[i].bit)
			return cuts[i].name;
	return NULL;
}

static void print_verdict(FILE *out, const struct verdict *v)
{
	char low[32], high[32];
	int at = (int)v->left_band_at_s;

	switch (v->state) {
	case VERDICT_WARMUP:
		fputs("  warmup", out);
		return;
	case VERDICT_LEAK:
		if (at < 0) /* a scan proved it before the curve left a band */
			fputs("  LEAK", out);
		else
			fprintf(out, "  LEAK since %02d:%02d:%02d", at / 3600, at / 60 % 60,
				at % 60);
		break;
	case VERDICT_GROWING:
		fputs("  growing", out);
		break;
	case VERDICT_RECOVERED:
		fputs("  recovered", out);
		break;
	case VERDICT_STEADY:
		fputs("  steady", out);
		break;
	}
	if (verdict_has_band(v))
		fprintf(out, " (%sband %s-%s)", v->state == VERDICT_STEADY ? "" : "steady ",
			human_bytes(v->band_low, low, sizeof(low)),
			human_bytes(v->band_high, high, sizeof(high)));
}

/* The heap beyond the stacks shown, so that the figures add up. */
static void print_rest_of_heap(FILE *out, const struct proc_report *p)
{
	char n[32], bytes[32], stacks[32];

	const char *unit = p->pages ? "pages" : "allocs";

	if (p->stacks_rest.allocs)
		fprintf(out, "    %s B in %s %s in %s more stacks (-T shows more)\n",
			group_digits(p->stacks_rest.bytes, bytes, sizeof(bytes)),
			group_digits(p->pages ? pages_in(p->stacks_rest.bytes) : p->stacks_rest.allocs,
				     n, sizeof(n)),
			unit, group_digits(p->stacks_rest.stacks, stacks, sizeof(stacks)));
	if (p->no_stack.allocs)
		fprintf(out, "    %s B in %s %s with no stack recorded (%s)\n",
			group_digits(p->no_stack.bytes, bytes, sizeof(bytes)),
			group_digits(p->pages ? pages_in(p->no_stack.bytes) : p->no_stack.allocs,
				     n, sizeof(n)),
			unit, p->pages ? "the walk failed, or a full stack table"
				       : "-s, or a full stack table");
}

static void print_headline(FILE *out, const char *stamp, const struct proc_report *p)
{
	char heap[32], n[32], rate[32], rss[32];

	if (p->pid == KERNEL_OWNER) /* the kernel's own allocations: no heap, no RSS */
		fprintf(out, "[%s] the kernel itself (interrupts, kernel threads):", stamp);
	else {
		fprintf(out, "[%s] pid %d (", stamp, p->pid);
		put_text(out, p->comm);
		fputc(')', out);
	}
	if (p->pages)
		fprintf(out, " pages %s resident in %s,",
			human_bytes((double)pages_resident(p), heap, sizeof(heap)),
			group_digits(pages_in(pages_resident(p)), n, sizeof(n)));
	else if (p->probed && p->pid != KERNEL_OWNER)
		fprintf(out, " heap %s in %s allocs,",
			human_bytes((double)outstanding_bytes(&p->heap), heap, sizeof(heap)),
			group_digits(outstanding_allocs(&p->heap), n, sizeof(n)));
	fprintf(out, " %s%s/s", p->growth_bps >= 0 ? "+" : "",
		human_bytes(p->growth_bps, rate, sizeof(rate)));
	if (p->pid != KERNEL_OWNER)
		fprintf(out, ", rss %s", human_bytes((double)p->rss_bytes, rss, sizeof(rss)));
	if (p->watched || p->pages)
		fprintf(out, " (%s anon)", human_bytes((double)p->anon_bytes, rss, sizeof(rss)));
	if (p->has_kernel)
		fprintf(out, ", kernel %s %s%s/s",
			human_bytes((double)outstanding_bytes(&p->kernel), heap, sizeof(heap)),
			p->kernel_growth_bps >= 0 ? "+" : "",
			human_bytes(p->kernel_growth_bps, rate, sizeof(rate)));
	if (!p->alive)
		fputs("  exited", out);
	print_verdict(out, &p->verdict);
	if (!p->probed && !p->pages)
		fputs("  (watched: allocator not probed)", out);
	if (p->scanned && leaked_bytes(&p->scan.total))
		fprintf(out, "  LOST %s",
			human_bytes((double)leaked_bytes(&p->scan.total), heap, sizeof(heap)));
	else if (p->scanned)
		fputs("  nothing lost", out);
}

/* Its last scan: when, what it cost, what it found. */
static void print_scan(FILE *out, const struct reach_summary *s)
{
	char stamp[16], bytes[32];
	time_t sec = (time_t)s->time;
	struct tm tm;

	localtime_r(&sec, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	fprintf(out, "    scanned at %s (held %.1f ms, %s B read)", stamp, s->pause_ms,
		group_digits(s->scanned_bytes, bytes, sizeof(bytes)));
	print_kinds(out, &s->total, true);
	if (s->unread_bytes)
		fprintf(out, "; %s B could not be read",
			group_digits(s->unread_bytes, bytes, sizeof(bytes)));
	fputc('\n', out);
}

static void print_proc(FILE *out, const char *stamp, const struct proc_report *p)
{
	char allocs[32], frees[32];

	print_headline(out, stamp, p);
	if (p->pages)
		fprintf(out, "  (%s pages counted, %s freed in all)",
			group_digits(pages_in((long long)p->heap.alloc_bytes), allocs, sizeof(allocs)),
			group_digits(pages_in((long long)p->heap.free_bytes), frees, sizeof(frees)));
	else if (p->probed && p->pid != KERNEL_OWNER)
		fprintf(out, "  (%s allocs, %s frees in all)",
			group_digits(p->heap.allocs, allocs, sizeof(allocs)),
			group_digits(p->heap.frees, frees, sizeof(frees)));
	fputc('\n', out);
	if (p->scanned)
		print_scan(out, &p->scan);
	for (int i = 0; i < p->nshown; i++)
		print_stack(out, &p->stacks[i], p->pages);
	print_rest_of_heap(out, p);
}

/* What a pages mode figure is, once a report, when one is shown. */
static void print_pages_note(FILE *out, const char *stamp, const struct report *r)
{
	for (int i = 0; i < r->nfull; i++) {
		if (!r->procs[i].pages)
			continue;
		fprintf(out,
			"[%s] pages: each stack is where memory became resident and stays, not "
			"the blocks that hold it (memory the allocator reuses is not seen again); "
			"exact mode names the blocks (-p PID without --pages; system-wide, "
			"--exact)\n",
			stamp);
		return;
	}
}

/* The processes past --max-procs: how many of each verdict. */
static void print_rest(FILE *out, const char *stamp, const struct report *r)
{
	int states[VERDICT_LEAK + 1] = {0};

	if (r->nfull >= r->nprocs)
		return;
	for (int i = r->nfull; i < r->nprocs; i++)
		states[r->procs[i].verdict.state]++;
	fprintf(out, "[%s] %d more processes:", stamp, r->nprocs - r->nfull);
	for (int s = VERDICT_LEAK; s >= VERDICT_WARMUP; s--)
		if (states[s])
			fprintf(out, " %d %s", states[s], verdict_name((enum verdict_state)s));
	fputs(" (--max-procs N shows more)\n", out);
}

void report_text(FILE *out, const struct report *r)
{
	const struct drops *d = &r->drops;
	char stamp[16];
	struct tm tm;

	localtime_r(&r->wall, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	if (r->final)
		fprintf(out, "[%s] final report after %.1f s\n", stamp, r->elapsed_s);
	if (d->events || d->allocs_map_full || d->stacks || d->procs_map_full ||
	    d->lifecycle_map_full || d->calls_too_deep)
		fprintf(out,
			"[%s] dropped: %llu events, %llu allocations (allocs map full), "
			"%llu stacks, %llu allocations (process map full), "
			"%llu process events (lifecycle map full), "
			"%llu allocator calls (too deep in signal handlers)\n",
			stamp, (unsigned long long)d->events,
			(unsigned long long)d->allocs_map_full, (unsigned long long)d->stacks,
			(unsigned long long)d->procs_map_full,
			(unsigned long long)d->lifecycle_map_full,
			(unsigned long long)d->calls_too_deep);
	if (d->pages_split || d->pages_moved)
		fprintf(out,
			"[%s] pages not followed: %llu huge pages freed in pieces (the rest of each "
			"left the counts with its first piece), %llu moved or reclaimed by the "
			"kernel (migration, compaction, khugepaged, swap)\n",
			stamp, (unsigned long long)d->pages_split,
			(unsigned long long)d->pages_moved);
	if (r->nprocs == 0)
		fprintf(out, "[%s] no traced allocations yet\n", stamp);
	for (int i = 0; i < r->nfull; i++)
		print_proc(out, stamp, &r->procs[i]);
	print_rest(out, stamp, r);
	print_pages_note(out, stamp, r);
	fflush(out);
}
