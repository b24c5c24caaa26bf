/* Command-line options: parsing and validation only, no side effects. */
#ifndef OPTIONS_H
#define OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define MAX_PIDS 64
#define MAX_LIBS 16

struct options {
	pid_t pids[MAX_PIDS];
	int npids;
	char **command; /* argv of `-- COMMAND [ARG...]`, NULL-terminated; NULL if none */
	double interval_s;
	long count; /* reports before exiting; 0: until the target ends */
	bool kernel;
	int top;
	uint64_t older_ms;
	uint64_t min_size;
	uint64_t max_size;
	unsigned sample_rate;
	const char *libs[MAX_LIBS];
	int nlibs;
	bool json;
	const char *curve_path;
	const char *output_path; /* NULL: stdout */
	const char *plot_path;
	const char *pprof_path;
	const char *folded_path;
	struct sockaddr_storage listen; /* --listen; ss_family 0: none */
	bool fail_on_leak;
	double scan_s; /* --scan: seconds between scans of a process; 0: none but SIGUSR1's */
	bool no_scan;  /* no scan at all, not even at a command's exit */
	bool no_follow; /* -- COMMAND: not the processes it starts */
	bool all_stacks;     /* system-wide: probe every allocator from the start */
	bool pages;	     /* attribute resident pages (kernel events), no allocator probes */
	bool exact;	     /* system-wide: probe the allocator of a process that grows */
	int max_procs;	     /* processes shown in full in a report; 0: the default */
	uint32_t max_allocs; /* live blocks the BPF maps hold */
	uint32_t max_stacks; /* distinct stacks they hold */
};

enum parse_result {
	PARSE_OK,
	PARSE_EXIT,  /* --help or --version was printed */
	PARSE_USAGE, /* usage error; the message is in err */
};

enum parse_result options_parse(struct options *o, int argc, char **argv, char *err, size_t errlen);
void options_usage(FILE *out);

#endif
