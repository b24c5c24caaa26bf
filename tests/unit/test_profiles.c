/* The profile writers (--folded, --pprof) on a report whose figures are known. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "profile.pb-c.h"
#include "report.h"
#include "report_metrics.h"
#include "unit.h"

/*
 * One process: 3,000 B outstanding in 3 blocks under leak() <- main, where
 * helper() is inlined into leak(); 500 B in a stack after the top one (-T 1);
 * 24 B with no stack recorded; a stack that holds nothing but made 10 calls
 * of 100 B. Totals: 40 allocs, 5,000 B; outstanding 3,524 B in 6 blocks.
 * A scan found the top stack's blocks lost (2,000 B in 2) and indirect
 * (1,000 B in 1), and 24 B in 1 block lost elsewhere.
 */
static struct frame frames_a[3] = {
    {.addr = 0x401010,
     .symbol = "helper",
     .file = "a.c",
     .line = 3,
     .inlined = true,
     .module = "/bin/a",
     .map_start = 0x400000,
     .map_end = 0x402000,
     .build_id = "abcd"},
    {.addr = 0x401010,
     .symbol = "leak",
     .file = "a.c",
     .line = 9,
     .module = "/bin/a",
     .map_start = 0x400000,
     .map_end = 0x402000,
     .build_id = "abcd"},
    {.addr = 0x401100,
     .symbol = "main",
     .file = "a.c",
     .line = 20,
     .module = "/bin/a",
     .map_start = 0x400000,
     .map_end = 0x402000,
     .build_id = "abcd"},
};
static struct frame frames_b[1] = {
    {.addr = 0x401200,
     .symbol = "other;odd",
     .module = "/bin/a",
     .map_start = 0x400000,
     .map_end = 0x402000},
};
static struct frame frames_c[1] = {{.addr = 0x7f0000001000, .module = "/lib/libx.so"}};

static void fill_report(struct report *r, struct proc_report *p, struct stack_report s[3])
{
	memset(r, 0, sizeof(*r));
	memset(p, 0, sizeof(*p));
	memset(s, 0, 3 * sizeof(*s));
	s[0] = (struct stack_report){
	    .c = {.allocs = 20, .alloc_bytes = 4000},
	    .out_bytes = 3000,
	    .out_allocs = 3,
	    .scanned = true,
	    .reach = {.bytes = {[REACH_LOST] = 2000, [REACH_INDIRECT] = 1000},
		      .allocs = {[REACH_LOST] = 2, [REACH_INDIRECT] = 1}},
	    .nframes = 3,
	    .frames = frames_a};
	s[1] = (struct stack_report){
	    .c = {.allocs = 5, .alloc_bytes = 500},
	    .out_bytes = 500,
	    .out_allocs = 2,
	    .nframes = 1,
	    .frames = frames_b};
	s[2] = (struct stack_report){
	    .c = {.allocs = 10, .alloc_bytes = 100}, .nframes = 1, .frames = frames_c};
	p->pid = 42;
	strcpy(p->comm, "srv x");
	p->probed = p->alive = true;
	p->heap = (struct counts){
	    .allocs = 40, .frees = 34, .alloc_bytes = 5000, .free_bytes = 5000 - 3524};
	p->stacks = s, p->nstacks = 3, p->nshown = 1;
	p->stacks_rest.stacks = 1, p->stacks_rest.bytes = 500, p->stacks_rest.allocs = 2;
	p->no_stack.bytes = 24, p->no_stack.allocs = 1;
	p->scanned = true;
	p->scan.total = (struct reach_counts){
	    .bytes = {[REACH_LOST] = 2024, [REACH_INDIRECT] = 1000, [REACH_REACHABLE] = 500},
	    .allocs = {[REACH_LOST] = 3, [REACH_INDIRECT] = 1, [REACH_REACHABLE] = 2}};
	r->procs = p, r->nprocs = 1, r->nfull = 1;
}

static void test_folded(const struct report *r, const char *path)
{
	char line[512], want[3][128] = {"srv_x;main;leak;helper 3000", "srv_x;other_odd 500",
					"srv_x;[no stack listed] 24"};
	int n = 0, seen = 0;
	FILE *f;

	CHECK(report_folded(path, r) == 0);
	f = fopen(path, "r");
	CHECK(f != NULL);
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		for (int i = 0; i < 3; i++)
			if (!strcmp(line, want[i]))
				seen |= 1 << i;
		n++;
	}
	if (f)
		fclose(f);
	CHECK(n == 3 && seen == 7); /* the empty stack has no line */
}

static Perftools__Profiles__Profile *read_pprof(const char *path)
{
	static unsigned char buf[1 << 16];
	gzFile gz = gzopen(path, "rb");
	int len = gz ? gzread(gz, buf, sizeof(buf)) : -1;

	if (gz)
		gzclose(gz);
	return len > 0 ? perftools__profiles__profile__unpack(NULL, (size_t)len, buf) : NULL;
}

static const char *str(const Perftools__Profiles__Profile *p, int64_t i)
{
	return i >= 0 && (size_t)i < p->n_string_table ? p->string_table[i] : "?";
}

static void test_pprof(const struct report *r, const char *path)
{
	Perftools__Profiles__Profile *p;
	int64_t sums[6] = {0};
	bool inlined_ok = false;

	CHECK(report_pprof(path, r) == 0);
	p = read_pprof(path);
	CHECK(p != NULL);
	if (!p)
		return;
	CHECK(p->n_sample_type == 6 && !strcmp(str(p, p->sample_type[3]->type), "inuse_space") &&
	      !strcmp(str(p, p->sample_type[0]->type), "alloc_objects") &&
	      !strcmp(str(p, p->sample_type[5]->type), "lost_space"));
	CHECK(!strcmp(str(p, p->default_sample_type), "inuse_space"));
	CHECK(p->n_sample == 4); /* three stacks and what no listed stack holds */
	for (size_t i = 0; i < p->n_sample; i++) {
		const Perftools__Profiles__Sample *s = p->sample[i];

		CHECK(s->n_value == 6 && s->n_location_id >= 1 && s->n_label == 2);
		for (int k = 0; k < 6 && s->n_value == 6; k++)
			sums[k] += s->value[k];
		if (s->n_label == 2)
			CHECK(!strcmp(str(p, s->label[0]->key), "pid") && s->label[0]->num == 42 &&
			      !strcmp(str(p, s->label[1]->str), "srv x"));
	}
	/* Each figure sums to the process's: allocs, bytes, outstanding, what
	 * the scan found unreachable. */
	CHECK(sums[0] == 40 && sums[1] == 5000 && sums[2] == 6 && sums[3] == 3524);
	CHECK(sums[4] == 4 && sums[5] == 3024);
	for (size_t i = 0; i < p->n_location; i++) {
		const Perftools__Profiles__Location *l = p->location[i];

		if (l->address == 0x401010 && l->n_line == 2 && l->mapping_id)
			inlined_ok = !strcmp(str(p, p->function[l->line[0]->function_id - 1]->name),
					     "helper") &&
				     l->line[1]->line == 9;
	}
	CHECK(inlined_ok);
	CHECK(p->n_mapping == 1 && p->mapping[0]->memory_start == 0x400000 &&
	      !strcmp(str(p, p->mapping[0]->build_id), "abcd"));
	perftools__profiles__profile__free_unpacked(p, NULL);
}

void test_profiles_add_up(void)
{
	char dir[] = "/tmp/profiles.XXXXXX", path[64];
	struct report r;
	struct proc_report p;
	struct stack_report s[3];

	CHECK(mkdtemp(dir) != NULL);
	fill_report(&r, &p, s);
	snprintf(path, sizeof(path), "%s/heap.folded", dir);
	test_folded(&r, path);
	unlink(path);
	snprintf(path, sizeof(path), "%s/heap.pb.gz", dir);
	test_pprof(&r, path);
	unlink(path);
	rmdir(dir);
}

/* The exporter's page: one series per process shown, the rest summed, the
 * verdict as a state set; OpenMetrics names counter families without _total
 * and ends with # EOF. */
void test_metrics_page(void)
{
	struct proc_report p[2] = {
	    {.pid = 7,
	     .comm = "a\"b\\c",
	     .probed = true,
	     .alive = true,
	     .heap = {.allocs = 10, .frees = 4, .alloc_bytes = 1000, .free_bytes = 400},
	     .rss_bytes = 4096,
	     .verdict = {.state = VERDICT_LEAK, .band_low = 1, .band_high = 2, .band_to_s = 5},
	     .scanned = true,
	     .scan = {.total = {.bytes = {[REACH_LOST] = 64, [REACH_INDIRECT] = 32}}}},
	    {.pid = 8,
	     .comm = "other",
	     .probed = true,
	     .alive = true,
	     .heap = {.allocs = 3, .frees = 1, .alloc_bytes = 30, .free_bytes = 10},
	     .rss_bytes = 8192},
	};
	struct report r = {.procs = p, .nprocs = 2, .nfull = 1};
	struct tracer_health h = {.samples = 12, .reports = 2, .drops = {.stacks = 5}};
	char *procs = metrics_procs(&r, false), *page, *om_procs = metrics_procs(&r, true), *om;
	size_t len, om_len;

	page = metrics_page(procs, &h, false, &len);
	om = metrics_page(om_procs, &h, true, &om_len);
	CHECK(len == strlen(page) && om_len == strlen(om));
	CHECK(strstr(page, "memleak_process_heap_bytes{pid=\"7\",comm=\"a\\\"b\\\\c\"} 600\n"));
	CHECK(strstr(page, "memleak_process_heap_bytes{pid=\"other\",comm=\"\"} 20\n"));
	CHECK(strstr(page, "memleak_process_rss_bytes{pid=\"other\",comm=\"\"} 8192\n"));
	CHECK(strstr(page, "memleak_process_lost_bytes{pid=\"7\",comm=\"a\\\"b\\\\c\"} 96\n"));
	CHECK(!strstr(page, "pid=\"8\""));
	CHECK(strstr(page, "state=\"leak\"} 1\n") && strstr(page, "state=\"steady\"} 0\n"));
	CHECK(strstr(page, "memleak_processes{state=\"warmup\"} 1\n"));
	CHECK(strstr(page, "memleak_process_band_high_bytes{pid=\"7\",comm=\"a\\\"b\\\\c\"} 2\n"));
	CHECK(strstr(page, "# TYPE memleak_tracer_samples_total counter\n"));
	CHECK(strstr(page, "memleak_tracer_dropped_total{reason=\"stacks\"} 5\n"));
	CHECK(!strstr(page, "# EOF"));
	CHECK(
	    strstr(om, "# TYPE memleak_tracer_samples counter\nmemleak_tracer_samples_total 12\n"));
	CHECK(strlen(om) > 6 && !strcmp(om + strlen(om) - 6, "# EOF\n"));
	free(procs);
	free(om_procs);
	free(page);
	free(om);
}
