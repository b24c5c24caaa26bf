#include <arpa/inet.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "memleak.h"
#include "options.h"
#include "util.h"

#define VERSION "0.1.0"
#include "version.h" /* BUILD_DESCRIBE: git describe of the build, "" if none */

enum long_only {
	OPT_LIB = 256,
	OPT_JSON,
	OPT_CURVE,
	OPT_OUTPUT,
	OPT_PLOT,
	OPT_PPROF,
	OPT_FOLDED,
	OPT_LISTEN,
	OPT_FAIL_ON_LEAK,
	OPT_SCAN,
	OPT_NO_SCAN,
	OPT_NO_FOLLOW,
	OPT_ALL_STACKS,
	OPT_PAGES,
	OPT_EXACT,
	OPT_MAX_PROCS,
	OPT_MAX_ALLOCS,
	OPT_MAX_STACKS,
	OPT_VERSION,
};

static const struct option long_options[] = {
    {"pid", required_argument, NULL, 'p'},
    {"kernel", no_argument, NULL, 'k'},
    {"top", required_argument, NULL, 'T'},
    {"older", required_argument, NULL, 'o'},
    {"min-size", required_argument, NULL, 'z'},
    {"max-size", required_argument, NULL, 'Z'},
    {"sample-rate", required_argument, NULL, 's'},
    {"lib", required_argument, NULL, OPT_LIB},
    {"json", no_argument, NULL, OPT_JSON},
    {"curve", required_argument, NULL, OPT_CURVE},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"plot", required_argument, NULL, OPT_PLOT},
    {"pprof", required_argument, NULL, OPT_PPROF},
    {"folded", required_argument, NULL, OPT_FOLDED},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"fail-on-leak", no_argument, NULL, OPT_FAIL_ON_LEAK},
    {"scan", optional_argument, NULL, OPT_SCAN},
    {"no-scan", no_argument, NULL, OPT_NO_SCAN},
    {"no-follow", no_argument, NULL, OPT_NO_FOLLOW},
    {"all-stacks", no_argument, NULL, OPT_ALL_STACKS},
    {"pages", no_argument, NULL, OPT_PAGES},
    {"exact", no_argument, NULL, OPT_EXACT},
    {"max-procs", required_argument, NULL, OPT_MAX_PROCS},
    {"max-allocs", required_argument, NULL, OPT_MAX_ALLOCS},
    {"max-stacks", required_argument, NULL, OPT_MAX_STACKS},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {0},
};

void options_usage(FILE *out)
{
	fputs("usage: memleak-bpf [OPTIONS] [INTERVAL [COUNT]]\n"
	      "       memleak-bpf [OPTIONS] -- COMMAND [ARG...]\n"
	      "\n"
	      "Find memory leaks in running programs with eBPF.\n"
	      "\n"
	      "Targets (neither: every process on the machine):\n"
	      "  -p, --pid PID[,PID...]  trace these running processes (all their threads)\n"
	      "  -- COMMAND [ARG...]     start COMMAND and trace it from its first allocation\n"
	      "\n"
	      "Options:\n"
	      "  INTERVAL                seconds between reports (default 5; fractions allowed)\n"
	      "  COUNT                   number of reports, then exit (with -- COMMAND: the\n"
	      "                          probes come off and it waits for the command)\n"
	      "  -k, --kernel            also trace kernel allocations (kmalloc, kmem_cache,\n"
	      "                          pages, percpu), counted to the process that made them\n"
	      "      --all-stacks        system-wide: probe every process's allocator from\n"
	      "                          the start (default: watch every process's memory and\n"
	      "                          count the pages of those whose curve leaves its band)\n"
	      "      --pages             no allocator probes: count each resident anonymous\n"
	      "                          page to the stack that first touched it, until it\n"
	      "                          is freed (kernel page events: no cost per malloc,\n"
	      "                          only growth shows); system-wide, the default for a\n"
	      "                          process whose curve leaves its band\n"
	      "      --exact             system-wide: probe the allocator of a process whose\n"
	      "                          curve leaves its band (exact blocks), not its pages\n"
	      "      --max-procs N       processes shown in full in each report, leaks first\n"
	      "                          (default: 10 system-wide, all otherwise); the rest\n"
	      "                          are counted on one line\n"
	      "      --max-allocs N      live blocks the tracer can hold (default 1048576;\n"
	      "                          128 bytes of kernel memory each, taken at start)\n"
	      "      --max-stacks N      distinct call stacks it can hold (default 32768;\n"
	      "                          each takes about 700 bytes of kernel memory in use)\n"
	      "  -T, --top N             call stacks per process in each report (default 10)\n"
	      "  -o, --older MS          only count allocations older than MS milliseconds\n"
	      "                          in the stack tables\n"
	      "  -z, --min-size B        ignore allocations smaller than B bytes\n"
	      "  -Z, --max-size B        ignore allocations larger than B bytes\n"
	      "  -s, --sample-rate N     record call stacks for about 1 in N allocations;\n"
	      "                          totals stay exact\n"
	      "      --lib PATH          the allocator to trace (repeatable; default: the\n"
	      "                          object that serves malloc in each target)\n"
	      "      --json              reports as JSON lines on stdout\n"
	      "      --output FILE       write the reports to FILE, not stdout (a command\n"
	      "                          run by -- then keeps stdout to itself)\n"
	      "      --curve FILE        write the memory curve as CSV\n"
	      "      --plot FILE         write the memory curve as an SVG chart\n"
	      "      --pprof FILE        write the outstanding heap as a pprof profile\n"
	      "                          (gzipped profile.proto) at each report\n"
	      "      --folded FILE       write outstanding bytes as folded stacks (the input\n"
	      "                          of flamegraph.pl, inferno, speedscope) at each report\n"
	      "      --listen ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n"
	      "      --fail-on-leak      exit with status 3 when any report judged a leak,\n"
	      "                          or a scan found lost or indirect blocks\n"
	      "      --scan[=SECONDS]    -p and system-wide: scan a process holding a growing\n"
	      "                          stack for blocks nothing points to, at most once\n"
	      "                          per SECONDS (default 60), and every one at the end\n"
	      "                          (SIGUSR1: scan every traced process now)\n"
	      "      --no-scan           no scan: not even of COMMAND's memory at its exit\n"
	      "      --no-follow         trace COMMAND alone, not the processes it starts\n"
	      "  -h, --help              this help\n"
	      "      --version           the version\n"
	      "\n"
	      "Exit status: 0 success, 1 runtime error, 2 usage error, 3 leak found with\n"
	      "--fail-on-leak; with -- COMMAND, otherwise COMMAND's own status (ended by\n"
	      "COMMAND's signal if a signal ended it). SIGINT, SIGTERM, SIGHUP, SIGQUIT end\n"
	      "tracing with a final report; with -- COMMAND they are passed on unless it got\n"
	      "them too, and memleak-bpf ends when it does.\n",
	      out);
}

/* ADDR:PORT, ADDR a numeric IPv4 address or a bracketed IPv6 one. */
static int parse_listen(const char *arg, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *colon = strrchr(arg, ':');
	char host[INET6_ADDRSTRLEN + 2];
	uint64_t port;
	size_t len;

	memset(ss, 0, sizeof(*ss));
	if (!colon || !parse_u64(colon + 1, &port) || port == 0 || port > 65535)
		return -1;
	len = (size_t)(colon - arg);
	if (len >= sizeof(host))
		return -1;
	memcpy(host, arg, len);
	host[len] = '\0';
	if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
		host[len - 1] = '\0';
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1 ? 0 : -1;
	}
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : -1;
}

static enum parse_result usage_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return PARSE_USAGE;
}

static bool parse_pids(struct options *o, const char *arg)
{
	char buf[1024];
	char *save, *tok;

	if (strlen(arg) >= sizeof(buf))
		return false;
	strcpy(buf, arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (!parse_u64(tok, &v) || v == 0 || v > 0x3fffffff || o->npids >= MAX_PIDS)
			return false;
		o->pids[o->npids++] = (pid_t)v;
	}
	return o->npids > 0;
}

static void set_defaults(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->interval_s = 5;
	o->top = 10;
	o->max_size = UINT64_MAX;
	o->sample_rate = 1;
	o->max_allocs = MAX_ALLOCS;
	o->max_stacks = MAX_STACKS;
}

/* A table size in [min, max]; false if the text is not one. */
static bool parse_size(const char *arg, uint64_t min, uint64_t max, uint32_t *out)
{
	uint64_t v;

	if (!parse_u64(arg, &v) || v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Where `--` stands, or argc: what follows it is the command. */
static int find_separator(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0)
			return i;
	return argc;
}

static enum parse_result parse_option(struct options *o, int c, const char *arg, const char *name,
				      char *err, size_t errlen)
{
	uint64_t v;

	switch (c) {
	case 'p':
		if (!parse_pids(o, arg))
			return usage_error(err, errlen,
					   "invalid PID list '%s': expected PID[,PID...] of "
					   "positive numbers (at most %d)",
					   arg, MAX_PIDS);
		return PARSE_OK;
	case 'k':
		o->kernel = true;
		return PARSE_OK;
	case 'T':
		if (!parse_u64(arg, &v) || v == 0 || v > 10000)
			return usage_error(err, errlen, "invalid --top '%s': expected 1 to 10000",
					   arg);
		o->top = (int)v;
		return PARSE_OK;
	case 'o':
		if (!parse_u64(arg, &v) || v > UINT64_MAX / 1000000)
			return usage_error(err, errlen,
					   "invalid --older '%s': expected milliseconds", arg);
		o->older_ms = v;
		return PARSE_OK;
	case 'z':
	case 'Z':
		if (!parse_u64(arg, &v))
			return usage_error(err, errlen, "invalid %s '%s': expected a size in bytes",
					   name, arg);
		*(c == 'z' ? &o->min_size : &o->max_size) = v;
		return PARSE_OK;
	case 's':
		if (!parse_u64(arg, &v) || v == 0 || v > 1000000)
			return usage_error(
			    err, errlen, "invalid --sample-rate '%s': expected 1 to 1000000", arg);
		o->sample_rate = (unsigned)v;
		return PARSE_OK;
	case OPT_LIB:
		if (o->nlibs >= MAX_LIBS)
			return usage_error(err, errlen, "too many --lib (at most %d)", MAX_LIBS);
		o->libs[o->nlibs++] = arg;
		return PARSE_OK;
	case OPT_JSON:
		o->json = true;
		return PARSE_OK;
	case OPT_CURVE:
		o->curve_path = arg;
		return PARSE_OK;
	case OPT_OUTPUT:
		o->output_path = arg;
		return PARSE_OK;
	case OPT_PLOT:
		o->plot_path = arg;
		return PARSE_OK;
	case OPT_PPROF:
		o->pprof_path = arg;
		return PARSE_OK;
	case OPT_FOLDED:
		o->folded_path = arg;
		return PARSE_OK;
	case OPT_LISTEN:
		if (parse_listen(arg, &o->listen))
			return usage_error(err, errlen,
					   "invalid --listen '%s': expected ADDR:PORT, e.g. "
					   "127.0.0.1:9876 or [::1]:9876",
					   arg);
		return PARSE_OK;
	case OPT_FAIL_ON_LEAK:
		o->fail_on_leak = true;
		return PARSE_OK;
	case OPT_SCAN:
		o->scan_s = 60;
		if (arg && !parse_positive_double(arg, &o->scan_s))
			return usage_error(err, errlen,
					   "invalid --scan '%s': expected seconds greater than 0",
					   arg);
		return PARSE_OK;
	case OPT_NO_SCAN:
		o->no_scan = true;
		return PARSE_OK;
	case OPT_NO_FOLLOW:
		o->no_follow = true;
		return PARSE_OK;
	case OPT_ALL_STACKS:
		o->all_stacks = true;
		return PARSE_OK;
	case OPT_PAGES:
		o->pages = true;
		return PARSE_OK;
	case OPT_EXACT:
		o->exact = true;
		return PARSE_OK;
	case OPT_MAX_PROCS:
		if (!parse_u64(arg, &v) || v == 0 || v > 100000)
			return usage_error(err, errlen,
					   "invalid --max-procs '%s': expected 1 to 100000", arg);
		o->max_procs = (int)v;
		return PARSE_OK;
	case OPT_MAX_ALLOCS:
		if (!parse_size(arg, 1024, 1 << 26, &o->max_allocs))
			return usage_error(err, errlen,
					   "invalid --max-allocs '%s': expected 1024 to 67108864",
					   arg);
		return PARSE_OK;
	case OPT_MAX_STACKS:
		if (!parse_size(arg, 1024, 1 << 22, &o->max_stacks))
			return usage_error(err, errlen,
					   "invalid --max-stacks '%s': expected 1024 to 4194304",
					   arg);
		return PARSE_OK;
	case 'h':
		options_usage(stdout);
		return PARSE_EXIT;
	case OPT_VERSION:
		if (BUILD_DESCRIBE[0])
			printf("memleak-bpf %s (git %s)\n", VERSION, BUILD_DESCRIBE);
		else
			printf("memleak-bpf %s\n", VERSION);
		return PARSE_EXIT;
	}
	return usage_error(err, errlen, "unknown option");
}

static enum parse_result parse_positionals(struct options *o, int n, char **args, char *err,
					   size_t errlen)
{
	uint64_t count;

	if (n > 2)
		return usage_error(err, errlen,
				   "unexpected argument '%s' (to run a command, put "
				   "it after --)",
				   args[2]);
	if (n >= 1 && !parse_positive_double(args[0], &o->interval_s))
		return usage_error(
		    err, errlen, "invalid INTERVAL '%s': expected seconds greater than 0", args[0]);
	if (n == 2) {
		if (!parse_u64(args[1], &count) || count == 0 || count > 1000000000)
			return usage_error(
			    err, errlen, "invalid COUNT '%s': expected a positive number", args[1]);
		o->count = (long)count;
	}
	return PARSE_OK;
}

enum parse_result options_parse(struct options *o, int argc, char **argv, char *err, size_t errlen)
{
	int sep = find_separator(argc, argv);
	enum parse_result r;
	int c, index;

	set_defaults(o);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(sep, argv, ":p:kT:o:z:Z:s:h", long_options, &index)) != -1) {
		const char *name = argv[optind - 1];

		if (c == '?') {
			if (optopt)
				return usage_error(err, errlen, "unknown option '-%c'", optopt);
			return usage_error(err, errlen, "unknown option '%s'", name);
		}
		if (c == ':')
			return usage_error(err, errlen, "option '%s' needs a value", name);
		r = parse_option(o, c, optarg, name, err, errlen);
		if (r != PARSE_OK)
			return r;
	}
	r = parse_positionals(o, sep - optind, argv + optind, err, errlen);
	if (r != PARSE_OK)
		return r;
	if (sep < argc) {
		if (sep + 1 >= argc)
			return usage_error(err, errlen, "no COMMAND after --");
		o->command = argv + sep + 1;
	}
	if (o->command && o->npids)
		return usage_error(err, errlen,
				   "-p and -- COMMAND cannot be combined: pick one target");
	if (o->all_stacks && (o->command || o->npids))
		return usage_error(err, errlen,
				   "--all-stacks is for system-wide tracing: -p and -- COMMAND "
				   "probe their targets' allocators already");
	if (o->exact && (o->command || o->npids))
		return usage_error(err, errlen,
				   "--exact is for system-wide tracing: -p and -- COMMAND probe "
				   "the allocator already (unless --pages)");
	if (o->pages && (o->exact || o->all_stacks))
		return usage_error(err, errlen,
				   "--pages cannot be combined with %s: pick one mode",
				   o->exact ? "--exact" : "--all-stacks");
	if (o->pages && o->nlibs)
		return usage_error(err, errlen,
				   "--pages probes no allocator: --lib cannot be combined with it");
	if (o->scan_s && o->no_scan)
		return usage_error(err, errlen, "--scan and --no-scan cannot be combined");
	if (o->scan_s && o->command)
		return usage_error(err, errlen,
				   "--scan is for -p and system-wide: -- COMMAND is scanned at "
				   "its exit already (SIGUSR1 scans it now)");
	if (o->scan_s && o->pages)
		return usage_error(err, errlen,
				   "--pages holds no blocks to scan: --scan needs the allocator "
				   "probed");
	if (o->min_size > o->max_size)
		return usage_error(err, errlen, "--min-size %llu is larger than --max-size %llu",
				   (unsigned long long)o->min_size,
				   (unsigned long long)o->max_size);
	return PARSE_OK;
}
