/* Unit tests: no BPF programs. Parsing, formatting, ELF reading, discovery,
 * symbolization, the verdict; the unwinder's maps (created here: root). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "discover.h"
#include "elf_file.h"
#include "kallsyms.h"
#include "options.h"
#include "symbolize.h"
#include "unit.h"
#include "util.h"
#include "watch.h"

int unit_failed;

void test_verdict_synthetic(void);
void test_escape_each_format(void);
void test_fuzz_readers(void);
void test_ret_sites_of_jemalloc_new(void);
void test_probe_site_prologues(void);
void test_unwind_table_walk_equals_backtrace(void);
void test_verdict_recorded_curves(void);
void test_pages_stack_judge_recorded(void);
void test_verdict_warmup_and_band(void);
void test_verdict_band_does_not_absorb_a_leak(void);
void test_verdict_recovery_needs_the_floor_back(void);
void test_verdict_climb_through_a_stall_never_reads_steady(void);
void test_curve_bounded_keeps_extremes(void);
void test_curve_flat_stretch_keeps_its_ends(void);
void test_median_is_a_sorts_middle(void);
void test_profiles_add_up(void);
void test_metrics_page(void);
void test_unwinder_area_list(void);
void test_reach_kinds(void);

/* Split line at spaces into argv; the command, if any, points into it. */
static enum parse_result parse(struct options *o, char *line, char *err)
{
	static char *argv[32];
	int argc = 0;

	argv[argc++] = "memleak-bpf";
	for (char *tok = strtok(line, " "); tok && argc < 31; tok = strtok(NULL, " "))
		argv[argc++] = tok;
	argv[argc] = NULL;
	return options_parse(o, argc, argv, err, 256);
}

static void test_options_defaults(void)
{
	struct options o;
	char err[256], line[] = "";

	CHECK(parse(&o, line, err) == PARSE_OK);
	CHECK(o.interval_s == 5 && o.count == 0 && o.top == 10 && o.sample_rate == 1);
	CHECK(o.npids == 0 && !o.command && o.max_size == UINT64_MAX);
}

static void test_options_all(void)
{
	struct options o;
	char err[256];
	char line[] =
	    "-p 12,34 -T 3 -o 250 -z 8 -Z 4096 -s 10 --lib /a.so --lib /b.so --json 0.5 7";

	CHECK(parse(&o, line, err) == PARSE_OK);
	CHECK(o.npids == 2 && o.pids[0] == 12 && o.pids[1] == 34);
	CHECK(o.top == 3 && o.older_ms == 250 && o.min_size == 8 && o.max_size == 4096);
	CHECK(o.sample_rate == 10 && o.nlibs == 2 && strcmp(o.libs[1], "/b.so") == 0);
	CHECK(o.json && o.interval_s == 0.5 && o.count == 7);
}

static void test_options_system_wide(void)
{
	struct options o;
	char err[256], line[] = "-k --all-stacks --max-procs 3 2";

	CHECK(parse(&o, line, err) == PARSE_OK);
	CHECK(o.kernel && o.all_stacks && o.max_procs == 3 && o.interval_s == 2);
}

static void test_options_command(void)
{
	struct options o;
	char err[256], line[] = "-T 2 -- ./prog -T x --json";

	CHECK(parse(&o, line, err) == PARSE_OK);
	CHECK(o.top == 2 && !o.json);
	CHECK(o.command && strcmp(o.command[0], "./prog") == 0);
	CHECK(strcmp(o.command[1], "-T") == 0 && strcmp(o.command[3], "--json") == 0);
	CHECK(o.command[4] == NULL);
}

static void test_options_errors(void)
{
	static const char *const bad[] = {
	    "-p 0",
	    "-p 1,,x",
	    "-p -1",
	    "-T 0",
	    "-T x",
	    "-s 0",
	    "-z -1",
	    "1 2 3",
	    "0",
	    "-1",
	    "1 0",
	    "--nope",
	    "-q",
	    "-p",
	    "-p 1 -- x",
	    "--",
	    "nan",
	    "-z 9 -Z 8",
	    "--lib",
	    "--top=abc",
	    "--max-procs 0",
	    "--max-procs x",
	    "--all-stacks -p 1",
	    "--all-stacks -- x",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct options o;
		char err[256] = "", line[128];

		snprintf(line, sizeof(line), "%s", bad[i]);
		if (parse(&o, line, err) != PARSE_USAGE || !err[0]) {
			printf("  accepted bad input '%s'\n", bad[i]);
			unit_failed = 1;
		}
	}
}

static void test_human_bytes(void)
{
	char buf[32];

	CHECK(strcmp(human_bytes(512, buf, sizeof(buf)), "512 B") == 0);
	CHECK(strcmp(human_bytes(1536, buf, sizeof(buf)), "1.5 KiB") == 0);
	CHECK(strcmp(human_bytes(12.4 * 1024 * 1024, buf, sizeof(buf)), "12.4 MiB") == 0);
	CHECK(strcmp(human_bytes(-2048, buf, sizeof(buf)), "-2.0 KiB") == 0);
}

static void test_group_digits(void)
{
	char buf[32];

	CHECK(strcmp(group_digits(0, buf, sizeof(buf)), "0") == 0);
	CHECK(strcmp(group_digits(999, buf, sizeof(buf)), "999") == 0);
	CHECK(strcmp(group_digits(10233, buf, sizeof(buf)), "10,233") == 0);
	CHECK(strcmp(group_digits(1234567890, buf, sizeof(buf)), "1,234,567,890") == 0);
}

static void test_elf_offsets_in_libc(void)
{
	const char *names[] = {"malloc", "free", "no_such_function_xyz"};
	struct elf_func f[3];
	struct objlist l = {0};

	CHECK(discover_system(&l) == 0);
	CHECK(l.n >= 1 && strstr(l.paths[0], "libc.so.6"));
	CHECK(elf_funcs(l.paths[0], names, 3, f) == 2);
	CHECK(f[0].offset && f[1].offset && f[0].offset != f[1].offset && f[2].offset == 0);
	CHECK(f[0].size > 0 && f[0].size < 4096);
	CHECK(elf_funcs("/nonexistent", names, 3, f) == -1);
	objlist_free(&l);
}

static void test_discover_command(void)
{
	struct objlist l = {0};
	char self[4096];
	bool libc = false;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	CHECK(n > 0);
	self[n > 0 ? n : 0] = '\0';
	CHECK(discover_command(self, &l) == 0);
	CHECK(l.n >= 3 && strcmp(l.paths[0], self) == 0);
	for (int i = 0; i < l.n; i++)
		libc |= strstr(l.paths[i], "/libc.so.6") != NULL;
	CHECK(libc);
	objlist_free(&l);
}

__attribute__((noinline)) uint64_t return_address_here(void)
{
	return (uint64_t)__builtin_return_address(0);
}

static void test_symbolizer_on_self(void)
{
	struct symbolizer s;
	struct frame f, again;
	uint64_t ret = return_address_here(); /* an address inside this function */

	symbolizer_init(&s, getpid());
	CHECK(symbolizer_refresh(&s));
	symbolizer_lookup(&s, ret, &f);
	CHECK(strcmp(f.symbol, "test_symbolizer_on_self") == 0);
	CHECK(f.offset > 0 && strstr(f.module, "unit_tests"));
	CHECK(strstr(f.file, "test_main.c") && f.line > 0);
	symbolizer_lookup(&s, ret, &again); /* from the frame cache this time */
	CHECK(memcmp(&f, &again, sizeof(f)) == 0);
	symbolizer_lookup(&s, 16, &f); /* no module there */
	CHECK(f.symbol[0] == '\0' && f.module[0] == '\0');
	symbolizer_free(&s);
}

static void test_kallsyms_lookup(void)
{
	struct ksym syms[] = {{0x1000, "alloc_pages_noprof", "[kernel]"},
			      {0x2000, "anon_pipe_write", "[kernel]"},
			      {0x3000, "nf_hook", "[nf_tables]"}};
	struct kallsyms ks = {.syms = syms, .n = 3};
	struct frame f;

	kallsyms_lookup(&ks, 0x2010, &f);
	CHECK(strcmp(f.symbol, "anon_pipe_write") == 0 && f.offset == 0x10);
	CHECK(strcmp(f.module, "[kernel]") == 0 && f.file[0] == '\0');
	kallsyms_lookup(&ks, 0x3001, &f);
	CHECK(strcmp(f.symbol, "nf_hook") == 0 && strcmp(f.module, "[nf_tables]") == 0);
	kallsyms_lookup(&ks, 0x10, &f); /* below every symbol */
	CHECK(f.symbol[0] == '\0' && f.addr == 0x10);
	CHECK(kallsyms_is_allocator("kmem_cache_alloc_noprof"));
	CHECK(kallsyms_is_allocator("bpf_trace_run4"));
	CHECK(!kallsyms_is_allocator("anon_pipe_write"));
}

static bool is_kthreadd(pid_t pid)
{
	char path[64], comm[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return strcmp(comm, "kthreadd\n") == 0;
}

static void test_watch_scan_finds_user_processes(void)
{
	struct target_set ts;
	struct target *parent;

	targets_init(&ts, &(struct heap_maps){.blocks = -1,
					      .block_op = -1,
					      .procs = -1,
					      .stack_counts = -1,
					      .stacks = -1,
					      .ended = -1});
	ts.watching = true;
	watch_scan(&ts);
	parent = targets_find(&ts, getppid());
	CHECK(parent && parent->watched && !parent->probed && parent->rss_bytes > 0);
	CHECK(!targets_find(&ts, getpid())); /* never the tracer itself */
	if (is_kthreadd(2))		     /* a kernel thread: no memory map */
		CHECK(!targets_find(&ts, 2));
	CHECK(parent && !watch_wants_probe(parent)); /* warming up: no verdict yet */
	targets_free(&ts);
}

#define TEST(fn)                                                                                   \
	{                                                                                          \
#fn, fn                                                                            \
	}

int main(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
	    TEST(test_options_defaults),
	    TEST(test_options_all),
	    TEST(test_options_command),
	    TEST(test_options_errors),
	    TEST(test_human_bytes),
	    TEST(test_group_digits),
	    TEST(test_elf_offsets_in_libc),
	    TEST(test_discover_command),
	    TEST(test_symbolizer_on_self),
	    TEST(test_verdict_warmup_and_band),
	    TEST(test_verdict_band_does_not_absorb_a_leak),
	    TEST(test_verdict_recovery_needs_the_floor_back),
	    TEST(test_verdict_climb_through_a_stall_never_reads_steady),
	    TEST(test_verdict_synthetic),
	    TEST(test_curve_bounded_keeps_extremes),
	    TEST(test_curve_flat_stretch_keeps_its_ends),
	    TEST(test_median_is_a_sorts_middle),
	    TEST(test_options_system_wide),
	    TEST(test_kallsyms_lookup),
	    TEST(test_watch_scan_finds_user_processes),
	    TEST(test_escape_each_format),
	    TEST(test_profiles_add_up),
	    TEST(test_metrics_page),
	    TEST(test_fuzz_readers),
	    TEST(test_ret_sites_of_jemalloc_new),
	    TEST(test_probe_site_prologues),
	    TEST(test_unwind_table_walk_equals_backtrace),
	    TEST(test_unwinder_area_list),
	    TEST(test_reach_kinds),
	    TEST(test_verdict_recorded_curves),
	    TEST(test_pages_stack_judge_recorded),
	};
	int failed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(tests); i++) {
		unit_failed = 0;
		tests[i].fn();
		printf("%s %s\n", unit_failed ? "FAIL" : "PASS", tests[i].name);
		failed += unit_failed;
	}
	return failed ? 1 : 0;
}
