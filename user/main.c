/* memleak-bpf: find memory leaks in running programs with eBPF. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kcmp.h>
#include <bpf/libbpf.h>

#include "discover.h"
#include "exporter.h"
#include "elf_file.h"
#include "kmem.h"
#include "launch.h"
#include "memleak.h"
#include "memleak.skel.h"
#include "options.h"
#include "pages.h"
#include "preflight.h"
#include "probes.h"
#include "report.h"
#include "report_csv.h"
#include "report_metrics.h"
#include "report_svg.h"
#include "targets.h"
#include "unwinder.h"
#include "util.h"
#include "watch.h"

/* Processes shown in full in a system-wide report, unless --max-procs says. */
#define DEFAULT_MAX_PROCS 10
/* Samples between rescans of /proc in the default system-wide mode. */
#define RESCAN_SAMPLES 60
/* Samples between reclaiming the stacks nothing refers to any more. */
#define SWEEP_SAMPLES 4
/* Samples between freeing the unwind tables no traced process needs. */
#define UNWIND_SAMPLES 8
/* Rows of unwind tables: about 30k for libc, 65k for python3 (8 bytes each). */
#define UNWIND_ROWS	   (1u << 19)
#define UNWIND_ROWS_SYSTEM (1u << 22)
/* Tracing every process, a table outlives its object's last mapping this
 * long: the next process of the same program finds it ready. */
#define UNWIND_KEEP_S 60

enum exit_status {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1,
	EXIT_USAGE = 2,
	EXIT_LEAK = 3,
};

struct tracer {
	struct options opt;
	struct memleak_bpf *skel;
	struct kmem_bpf *kmem; /* with -k */
	struct probes probes;
	struct unwinder unwind;
	struct target_set targets;
	struct child child;
	bool launched;
	bool pages; /* growth is named by pages (--pages; system-wide unless --exact) */
	int sigfd;
	FILE *out; /* the reports: stdout, or --output */
	FILE *curve_csv;
	struct exporter *exporter; /* --listen */
	char *metrics_procs[2];	   /* of the last report: text format, OpenMetrics */
	double last_sample_time;   /* seconds since the epoch */
	bool output_failed;	   /* an output could not be written: stop, status 1 */
	bool stdout_closed;	   /* its reader went away (EPIPE): stop, nothing more to say */
	bool finished;		   /* the final report is written; a command may still run */
	bool leak_reported;	   /* some report judged some process a leak */
	bool leak_scanned;	   /* some scan found lost or indirect blocks */
	bool scan_wanted;	   /* SIGUSR1: scan every traced process */
	long reports;
	long samples;
};

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* Our own messages say what failed; libbpf's detail is for debugging. */
	if (level == LIBBPF_DEBUG || !getenv("MEMLEAK_BPF_DEBUG"))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* Tracing every process takes room for the tables of all their objects. */
static __u32 unwind_rows(const struct tracer *tr)
{
	return tr->opt.command || tr->opt.npids ? UNWIND_ROWS : UNWIND_ROWS_SYSTEM;
}

static int load_bpf(struct tracer *tr, char *err, size_t errlen)
{
	struct memleak_bpf *skel = memleak_bpf__open();
	struct heap_objects heap;
	struct heap_maps maps;
	int e;

	if (!skel) {
		snprintf(err, errlen, "cannot open the BPF object: %s", strerror(errno));
		return -1;
	}
	heap = HEAP_OBJECTS(skel);
	heap.nested_calls = &skel->bss->nested_calls;
	heap.ended = skel->maps.ended;
	skel->rodata->min_size = tr->opt.min_size;
	skel->rodata->max_size = tr->opt.max_size;
	skel->rodata->sample_rate = tr->opt.sample_rate;
	skel->rodata->self_tgid = (__u32)getpid();
	skel->rodata->page_size = (__u64)sysconf(_SC_PAGESIZE);
	/* For the benchmark: how stacks cost when only frame pointers are walked. */
	skel->rodata->frame_pointers_only =
	    getenv("MEMLEAK_BPF_UNWIND") && strcmp(getenv("MEMLEAK_BPF_UNWIND"), "fp") == 0;
	pages_prepare(skel, tr->pages);
	probes_prepare(skel);
	e = bpf_map__set_max_entries(skel->maps.unwind_rows, unwind_rows(tr));
	if (!e)
		e = heap_maps_size(&heap, tr->opt.max_allocs, tr->opt.max_stacks);
	if (!e)
		e = memleak_bpf__load(skel);
	if (!e && !(skel->links.image_changed = bpf_program__attach(skel->progs.image_changed)))
		e = -errno;
	if (!e)
		e = heap_maps_open(&maps, &heap);
	if (e) {
		snprintf(err, errlen,
			 "cannot load the BPF programs: %s (run with MEMLEAK_BPF_DEBUG=1 to see "
			 "the verifier's log)",
			 strerror(-e));
		memleak_bpf__destroy(skel);
		return -1;
	}
	tr->skel = skel;
	unwinder_init(&tr->unwind,
		      &(struct unwinder_maps){.rows_fd = bpf_map__fd(skel->maps.unwind_rows),
					      .objs_fd = bpf_map__fd(skel->maps.unwind_objs),
					      .wanted_fd = bpf_map__fd(skel->maps.unwind_wanted),
					      .areas_fd = bpf_map__fd(skel->maps.areas),
					      .row_cache_fd = bpf_map__fd(skel->maps.row_cache),
					      .epoch = &skel->data->unwind_epoch},
		      unwind_rows(tr), tr->opt.command || tr->opt.npids ? 0 : UNWIND_KEEP_S);
	targets_init(&tr->targets, &maps);
	tr->targets.older_ns = tr->opt.older_ms * 1000000;
	return 0;
}

static int start_kernel(struct tracer *tr, char *err, size_t errlen)
{
	struct target_set *ts = &tr->targets;

	if (!tr->opt.kernel)
		return 0;
	if (kallsyms_load(&ts->ksyms)) {
		snprintf(err, errlen, "-k: cannot read /proc/kallsyms: %s", strerror(errno));
		return -1;
	}
	tr->kmem =
	    kmem_start(&tr->opt, !tr->opt.command && !tr->opt.npids, &ts->kernel, err, errlen);
	return tr->kmem ? 0 : -1;
}

/* Each --lib is probed alone, so that one that defines no allocator
 * function is named. */
static int attach_libs(struct tracer *tr, pid_t pid, struct probes *p, char *err, size_t errlen)
{
	char why[128];

	for (int i = 0; i < tr->opt.nlibs; i++) {
		const char *lib = tr->opt.libs[i];
		struct objlist one = {0};
		int n;

		if (elf_check(lib, why, sizeof(why))) {
			snprintf(err, errlen, "--lib %s: %s", lib, why);
			return -1;
		}
		objlist_add(&one, lib);
		n = probes_attach(tr->skel, &one, pid, p, err, errlen);
		objlist_free(&one);
		if (n == 0)
			snprintf(err, errlen,
				 "--lib %s: defines none of the allocator functions (malloc, "
				 "free, operator new, ...)",
				 lib);
		if (n <= 0)
			return -1;
	}
	return 0;
}

static int attach_objects(struct tracer *tr, struct objlist *objs, pid_t pid, struct probes *p,
			  const char *what, char *err, size_t errlen)
{
	int n;

	if (tr->pages) /* its pages, from the kernel's events: no probe */
		return pages_trace(tr->skel, pid, err, errlen);
	if (tr->opt.nlibs)
		return attach_libs(tr, pid, p, err, errlen);
	n = probes_attach(tr->skel, objs, pid, p, err, errlen);
	if (n == 0)
		snprintf(err, errlen,
			 "no allocator functions found in %s (a stripped static binary?): "
			 "name the allocator with --lib PATH",
			 what);
	return n > 0 ? 0 : -1;
}

/* The unwind tables of a program about to run, before it maps them. */
static void add_tables(struct tracer *tr, const struct objlist *objs)
{
	for (int i = 0; i < objs->n; i++)
		unwinder_add_file(&tr->unwind, objs->paths[i]);
}

/* The command, forked first thing (launch_fork in start), is probed and let go. */
static int start_command(struct tracer *tr, char *err, size_t errlen)
{
	struct probes probes = {0};
	struct objlist objs = {0};
	struct target *t;
	int r;

	if (tr->kmem)
		kmem_trace(tr->kmem, tr->child.pid);
	r = discover_command(tr->child.path, &objs);
	if (r)
		snprintf(err, errlen,
			 "cannot execute '%.900s': not an ELF executable or a #! script",
			 tr->child.path);
	else
		r = attach_objects(tr, &objs, tr->child.pid, &probes, tr->child.path, err, errlen);
	add_tables(tr, &objs);
	objlist_free(&objs);
	if (r == 0)
		r = launch_release(&tr->child, err, errlen);
	if (r) {
		probes_detach(&probes);
		return -1;
	}
	t = targets_add(&tr->targets, tr->child.pid);
	t->kept = true;
	t->probes = probes;
	t->pages = tr->pages;
	snprintf(t->comm, sizeof(t->comm), "%s", strrchr(tr->child.path, '/') + 1);
	return 0;
}

static int start_pids(struct tracer *tr, char *err, size_t errlen)
{
	for (int i = 0; i < tr->opt.npids; i++) {
		pid_t pid = tr->opt.pids[i];
		struct probes probes = {0};
		struct objlist objs = {0};
		char what[64];
		struct target *t;
		int r;

		if (kill(pid, 0) && errno == ESRCH) {
			snprintf(err, errlen, "no process with PID %d", pid);
			return -1;
		}
		if (pid == getpid()) {
			snprintf(err, errlen, "PID %d is memleak-bpf itself, which it never traces",
				 pid);
			return -1;
		}
		if (discover_pid(pid, &objs)) {
			snprintf(err, errlen, "cannot read the memory map of PID %d: %s", pid,
				 strerror(errno));
			return -1;
		}
		if (tr->kmem)
			kmem_trace(tr->kmem, pid);
		snprintf(what, sizeof(what), "PID %d", pid);
		r = attach_objects(tr, &objs, pid, &probes, what, err, errlen);
		objlist_free(&objs);
		if (r)
			return -1;
		unwinder_add_pid(&tr->unwind, pid);
		t = targets_add(&tr->targets, pid);
		t->probes = probes;
		t->pages = tr->pages;
		t->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	}
	if (tr->opt.no_follow)
		return 0;
	/* Their children, as the lifecycle tracepoint tells of them. */
	tr->targets.follow = true;
	tr->skel->links.process_forked = bpf_program__attach(tr->skel->progs.process_forked);
	if (!tr->skel->links.process_forked) {
		snprintf(err, errlen, "cannot trace process lifecycle (sched tracepoints): %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

/* A new process traced from now on: the allocator of each object it maps
 * probed, its kernel allocations counted with -k, its unwind tables read.
 * whose: what it is, for the line that says it cannot be. */
static struct target *trace_new(struct tracer *tr, pid_t pid, const char *whose)
{
	struct probes probes = {0};
	struct objlist objs = {0};
	char what[64], err[512] = "its memory map cannot be read";
	struct target *t;

	snprintf(what, sizeof(what), "PID %d", pid);
	if (discover_pid(pid, &objs) ||
	    attach_objects(tr, &objs, pid, &probes, what, err, sizeof(err)))
		warnx_("pid %d, %s, cannot be traced: %s", pid, whose, err);
	objlist_free(&objs);
	if (tr->kmem)
		kmem_trace(tr->kmem, pid);
	unwinder_add_pid(&tr->unwind, pid);
	t = targets_add(&tr->targets, pid);
	t->probes = probes;
	t->pages = tr->pages;
	return t;
}

/* -p: a traced process's new child, seen at a sample: probed from now on
 * (what it did before is not counted, as for -p itself). */
static void probe_born(struct tracer *tr)
{
	for (int i = 0; i < tr->targets.n; i++) {
		struct target *t = &tr->targets.t[i];

		if (!t->born)
			continue;
		t->born = false;
		t = trace_new(tr, t->pid, "a child of a traced process"); /* the same target */
		t->pidfd = (int)syscall(SYS_pidfd_open, t->pid, 0);
		target_refresh(t);
	}
}

static int start_system(struct tracer *tr, char *err, size_t errlen)
{
	struct objlist objs = {0};
	int r;

	tr->targets.every_process = true;
	tr->skel->links.process_forked = bpf_program__attach(tr->skel->progs.process_forked);
	tr->skel->links.process_exited = bpf_program__attach(tr->skel->progs.process_exited);
	if (!tr->skel->links.process_forked || !tr->skel->links.process_exited) {
		snprintf(err, errlen, "cannot trace process lifecycle (sched tracepoints): %s",
			 strerror(errno));
		return -1;
	}
	if (!tr->opt.all_stacks) {
		tr->targets.watching = true;
		watch_scan(&tr->targets);
		return 0;
	}
	discover_system(&objs);
	r = attach_objects(tr, &objs, -1, &tr->probes, "the system's libraries", err, errlen);
	objlist_free(&objs);
	return r;
}

static int setup_signals(struct tracer *tr)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGPIPE); /* a write to a closed pipe fails with EPIPE instead */
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1); /* a scan, now */
	sigprocmask(SIG_BLOCK, &set, NULL);
	tr->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return tr->sigfd < 0 ? -1 : 0;
}

/* --max-procs, or its default: 10 system-wide, every process otherwise. */
static int max_procs(const struct tracer *tr)
{
	if (tr->opt.max_procs)
		return tr->opt.max_procs;
	return tr->targets.every_process ? DEFAULT_MAX_PROCS : INT_MAX;
}

/* One line, once; tracing stops and the final report is still written. */
static void output_failed(struct tracer *tr, const char *option, const char *path)
{
	warnx_("cannot write %s %s: %s; stopping after a final report", option, path,
	       strerror(errno));
	tr->output_failed = true;
}

static void write_profiles(struct tracer *tr, const struct report *r)
{
	if (tr->opt.pprof_path && !tr->output_failed && report_pprof(tr->opt.pprof_path, r))
		output_failed(tr, "--pprof", tr->opt.pprof_path);
	if (tr->opt.folded_path && !tr->output_failed && report_folded(tr->opt.folded_path, r))
		output_failed(tr, "--folded", tr->opt.folded_path);
}

static double thread_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Serve the processes of the last report and the tracer's health now. */
static void publish_metrics(struct tracer *tr)
{
	struct tracer_health h = {
	    .samples = tr->samples,
	    .reports = tr->reports,
	    .last_sample_time = tr->last_sample_time,
	    .stack_entries = tr->targets.stack_entries,
	    .stacks_capacity = tr->opt.max_stacks * (tr->kmem ? 2 : 1),
	    .unwind_rows = tr->unwind.rows_used,
	    .unwind_rows_capacity = unwind_rows(tr),
	};
	char *page[2];
	size_t len[2];

	if (!tr->exporter)
		return;
	targets_drops(&tr->targets, &h.drops);
	for (int k = 0; k < 2; k++)
		page[k] = metrics_page(tr->metrics_procs[k], &h, k, &len[k]);
	exporter_publish(tr->exporter, page, len);
}

/* The processes of a report as the metrics --listen serves from now on. */
static void report_metrics(struct tracer *tr, const struct report *r)
{
	if (!tr->exporter)
		return;
	for (int k = 0; k < 2; k++) {
		free(tr->metrics_procs[k]);
		tr->metrics_procs[k] = metrics_procs(r, k);
	}
	publish_metrics(tr);
}

/* A pipe shared with a command that writes into it without pause is full
 * at most moments: a long write would sleep there half done, and the
 * command's lines would land inside it. Wait (a second at most) for room,
 * with a margin for what the command writes between the look and the write. */
static void wait_pipe_room(int fd, size_t len)
{
	struct stat st;
	int size, queued;

	if (fstat(fd, &st) || !S_ISFIFO(st.st_mode) || (size = fcntl(fd, F_GETPIPE_SZ)) <= 0 ||
	    len + PIPE_BUF > (size_t)size)
		return;
	for (int i = 0; i < 10000; i++) {
		if (ioctl(fd, FIONREAD, &queued) || (size_t)(size - queued) >= len + PIPE_BUF)
			return;
		usleep(100);
	}
}

/* A report is rendered whole and written with one write(2), so that a
 * command sharing the output cannot land inside it. */
static int write_whole(int fd, const char *buf, size_t len)
{
	wait_pipe_room(fd, len);
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void put_report(struct tracer *tr, const struct report *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem;

	if (tr->stdout_closed || !(mem = open_memstream(&buf, &len)))
		return;
	if (tr->opt.json)
		report_json(mem, r);
	else
		report_text(mem, r);
	fclose(mem);
	if (write_whole(fileno(tr->out), buf, len)) {
		if (tr->out == stdout && errno == EPIPE)
			tr->stdout_closed = true;
		else if (!tr->output_failed)
			output_failed(tr, "--output", tr->opt.output_path ? tr->opt.output_path : "stdout");
	}
	free(buf);
}

static void write_report(struct tracer *tr, bool final)
{
	struct report_options ro = {.top = tr->opt.top,
				    .max_procs = max_procs(tr),
				    .older_ns = tr->opt.older_ms * 1000000,
				    .keep_all = tr->opt.pprof_path || tr->opt.folded_path};
	struct report r = {.seq = ++tr->reports, .final = final};

	double cpu = thread_cpu_ms();

	for (int i = 0; i < tr->targets.n; i++)
		target_refresh(&tr->targets.t[i]);
	targets_report(&tr->targets, &ro, &r);
	r.cpu_ms = thread_cpu_ms() - cpu;
	for (int i = 0; i < r.nprocs; i++)
		tr->leak_reported |= r.procs[i].verdict.state == VERDICT_LEAK;
	r.unwind.objects = tr->unwind.nobjs;
	r.unwind.rows = tr->unwind.rows_used;
	r.unwind.no_room = tr->unwind.no_room;
	put_report(tr, &r);
	write_profiles(tr, &r);
	report_metrics(tr, &r);
	report_free(&r);
	if (tr->opt.plot_path && !tr->output_failed) {
		int n;
		struct curve_report *curves = targets_curves(&tr->targets, &n);

		if (svg_write(tr->opt.plot_path, curves, n))
			output_failed(tr, "--plot", tr->opt.plot_path);
		free(curves);
	}
}

static bool all_exited(const struct target_set *ts)
{
	for (int i = 0; i < ts->n; i++)
		if (ts->t[i].alive && ts->t[i].pid != KERNEL_OWNER)
			return false;
	return ts->n > 0;
}

/* A traced process ran a new program, from whichever thread: the new
 * program's allocator is probed (it may be another one), then the old
 * probes come off, in the background. Both sets count each call once, so
 * nothing is lost or counted twice in between. The old ones cannot be
 * kept: after an exec from another thread than the leader, they are bound
 * to the leader that is gone. */
static void reprobe(struct tracer *tr, struct target *t)
{
	struct probes fresh = {0}, old = t->probes;
	struct objlist objs = {0};
	char exe[64], err[512] = "";

	snprintf(exe, sizeof(exe), "/proc/%d/exe", t->pid);
	if (discover_command(exe, &objs))
		snprintf(err, sizeof(err), "%s cannot be read: %s", exe, strerror(errno));
	if (err[0] || attach_objects(tr, &objs, t->pid, &fresh, exe, err, sizeof(err))) {
		warnx_("pid %d ran a new program whose allocator cannot be probed: %s", t->pid,
		       err);
		probes_detach(&fresh); /* the old ones go too: they are the old image's */
	}
	t->probes = fresh;
	add_tables(tr, &objs);
	objlist_free(&objs);
	probes_detach_later(&old, false);
	target_refresh(t);
}

/* Whether the process's live blocks are in the table (allocator probes),
 * to be scanned. */
static bool holds_blocks(const struct tracer *tr, const struct target *t)
{
	return t->alive && t->pid != KERNEL_OWNER && !t->pages &&
	       (t->probes.nlinks || tr->probes.nlinks || tr->launched);
}

/* Scan a process's memory: held already (its registers given: a command at
 * its end) or held for it now (the command by the ptrace it is under). */
static void scan_target(struct tracer *tr, struct target *t, const struct user_regs_struct *held)
{
	bool ours = tr->launched; /* the command or a descendant: under our ptrace */
	double t0 = monotonic_s();
	struct user_regs_struct *regs = NULL;
	struct scan_result res;
	struct freeze f = {0};
	char err[512];
	int e;

	if (held) {
		e = scan_held(&tr->targets.heap, t->pid, held, 1, &res, err, sizeof(err));
	} else if (ours) {
		launch_freeze(&tr->child, t->pid, &f);
		regs = freeze_regs(&f);
		e = scan_held(&tr->targets.heap, t->pid, regs, f.n, &res, err, sizeof(err));
		launch_thaw(&tr->child, &f);
		free(regs);
	} else {
		e = scan_live(&tr->targets.heap, t->pid, &res, err, sizeof(err));
	}
	if (e) {
		warnx_("%s", err);
		return;
	}
	res.sum.pause_ms = (monotonic_s() - t0) * 1000;
	scan_result_free(&t->scan);
	t->scan = res;
	t->scanned = true;
	t->scanned_at = monotonic_s();
	tr->leak_scanned |= leaked_bytes(&res.sum.total) > 0;
}

/* SIGUSR1, or the end with --scan: every traced process with blocks. */
static void scan_all(struct tracer *tr)
{
	for (int i = 0; i < tr->targets.n; i++)
		if (holds_blocks(tr, &tr->targets.t[i]))
			scan_target(tr, &tr->targets.t[i], NULL);
}

/* --scan: a process with a growing stack, at most once per its seconds. */
static void scan_due(struct tracer *tr)
{
	double now = monotonic_s();

	for (int i = 0; i < tr->targets.n; i++) {
		struct target *t = &tr->targets.t[i];
		bool growing = false;

		if (!holds_blocks(tr, t) || (t->scanned && now - t->scanned_at < tr->opt.scan_s))
			continue;
		for (size_t k = 0; k < t->nstacks && !growing; k++)
			growing = t->stacks[k].verdict.state == VERDICT_GROWING ||
				  t->stacks[k].verdict.state == VERDICT_LEAK;
		if (growing)
			scan_target(tr, t, NULL);
	}
}

/* Whether two processes share one memory (a vfork's child, clone(CLONE_VM)). */
static bool same_memory(pid_t a, pid_t b)
{
	return syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0) == 0;
}

/* A process the command or a descendant started, held at its birth (and
 * the thread that forked it, at the fork): probed before its first
 * instruction, with a copy of its parent's live blocks if it has a memory
 * of its own, as valgrind's child has. */
static void follow_birth(struct tracer *tr, pid_t pid)
{
	pid_t parent = proc_status_int(pid, "PPid");
	struct target *from = targets_find(&tr->targets, parent);
	int e;

	if (from && holds_blocks(tr, from) && !same_memory(parent, pid) &&
	    (e = heap_inherit(&tr->targets.heap, (__u32)parent, (__u32)pid)) < 0)
		warnx_("pid %d: the blocks it inherits from pid %d cannot be copied: %s", pid,
		       parent, strerror(-e));
	trace_new(tr, pid, "started by the command");
}

/* The stops of the command and its descendants served: births and execs
 * probed, ends scanned. True once all of them have exited. */
static bool serve_command(struct tracer *tr)
{
	struct child *c = &tr->child;
	enum launch_state s;

	while ((s = launch_poll(c)) != LAUNCH_RUNNING) {
		struct target *t = targets_find(&tr->targets, c->event);

		switch (s) {
		case LAUNCH_EXITED: /* its links go while the last report is made */
			target_exited(&tr->targets.t[0]);
			break;
		case LAUNCH_BORN:
			if (!tr->finished)
				follow_birth(tr, c->event);
			launch_resume(c);
			break;
		case LAUNCH_EXECED:
			if (t && !tr->finished)
				reprobe(tr, t);
			launch_resume(c);
			break;
		case LAUNCH_EXITING: /* its memory whole, for the last time */
			if (t)
				symbolizer_refresh(&t->sym);
			if (t && !tr->opt.no_scan && !tr->finished && holds_blocks(tr, t))
				scan_target(tr, t, &c->exit_regs);
			launch_let_exit(c);
			break;
		case LAUNCH_GONE:
			if (t)
				target_exited(t);
			break;
		case LAUNCH_RUNNING:
			break;
		}
	}
	return !tr->targets.t[0].alive && c->nprocs == 0;
}

/* A signal to the tracer is the command's to act on, as it would be
 * untraced: passed on, unless the command got it too (a signal to the
 * process group, the terminal's Ctrl-C). Its end is the tracer's. */
static bool pass_on(struct tracer *tr, const bool *got)
{
	bool exited = serve_command(tr);

	/* The command is gone, descendants live on (a daemon): an end asked
	 * of the tracer is its own. They run on, untraced. */
	if (!exited && !tr->targets.t[0].alive &&
	    (got[SIGINT] || got[SIGTERM] || got[SIGHUP] || got[SIGQUIT]))
		return true;
	for (int sig = 1; sig < NSIG && !exited; sig++) {
		if (!got[sig] || launch_got_too(&tr->child, sig))
			continue;
		/* It may be taking it right now: its stop is due in a moment. */
		usleep(20000);
		exited = serve_command(tr);
		if (!exited && !launch_got_too(&tr->child, sig))
			launch_pass(&tr->child, sig);
	}
	return exited || serve_command(tr);
}

/* Returns true when tracing should stop: a signal asked so (without a
 * command), or the command has exited. */
static bool handle_signals(struct tracer *tr)
{
	struct signalfd_siginfo si;
	bool got[NSIG] = {0}, any = false;

	while (read(tr->sigfd, &si, sizeof(si)) == sizeof(si)) {
		/* A closed output is found by its write (EPIPE). */
		if (si.ssi_signo == SIGCHLD || si.ssi_signo == SIGPIPE || si.ssi_signo >= NSIG)
			continue;
		if (si.ssi_signo == SIGUSR1) { /* the tracer's own: a scan */
			tr->scan_wanted = !tr->opt.no_scan;
			continue;
		}
		got[si.ssi_signo] = any = true;
	}
	return tr->launched ? pass_on(tr, got) : any;
}

static void watch_pidfds(struct tracer *tr, struct pollfd *fds, int nfds)
{
	for (int i = 1; i < nfds; i++) {
		struct target *t;

		if (!fds[i].revents)
			continue;
		for (int k = 0; k < tr->targets.n; k++) {
			t = &tr->targets.t[k];
			if (t->pidfd != fds[i].fd)
				continue;
			warnx_("pid %d (%s) exited; its last figures are in the next report",
			       t->pid, t->comm);
			if (t->pages) /* its pid may be another's next */
				pages_untrace(tr->skel, t->pid);
			target_exited(t);
		}
	}
}

/* A watched process whose curve left its band gets its resident pages
 * counted (with --exact: its allocator probed), so that the next reports
 * name its growing stacks. */
static void probe_growing(struct tracer *tr)
{
	for (int i = 0; i < tr->targets.n; i++) {
		struct target *t = &tr->targets.t[i];
		struct objlist objs = {0};
		char what[64], err[512] = "its memory map cannot be read";

		if (!watch_wants_probe(t))
			continue;
		t->probed = true;
		t->probed_at = monotonic_s();
		snprintf(what, sizeof(what), "PID %d", t->pid);
		if (discover_pid(t->pid, &objs) ||
		    attach_objects(tr, &objs, t->pid, &t->probes, what, err, sizeof(err)))
			warnx_("pid %d (%s) is %s, but its %s: %s", t->pid, t->comm,
			       verdict_name(t->verdict.state),
			       tr->pages ? "pages cannot be counted" : "allocator cannot be probed",
			       err);
		else
			warnx_("pid %d (%s) left its steady band: %s to name the growing stacks",
			       t->pid, t->comm,
			       tr->pages ? "counting its resident pages" : "probing its allocator");
		t->pages = tr->pages;
		unwinder_add_pid(&tr->unwind, t->pid);
		objlist_free(&objs);
		target_refresh(t);
	}
}

/* Probes cost the process a trap per allocation: once its curve is steady
 * again (a cache that filled up, a step that settled), they come off. */
static void unprobe_settled(struct tracer *tr)
{
	for (int i = 0; i < tr->targets.n; i++) {
		struct target *t = &tr->targets.t[i];

		if (!watch_settled(t, monotonic_s()))
			continue;
		warnx_("pid %d (%s) is steady again: its %s", t->pid, t->comm,
		       t->pages ? "pages are no longer counted" : "allocator probes are removed");
		if (t->pages)
			pages_untrace(tr->skel, t->pid);
		t->pages = false;
		target_unprobe(t);
	}
}

/* A process with probes of its own that ran a new program, from any thread,
 * is probed again (a launched command already was, held at its exec). */
static void reprobe_execs(struct tracer *tr)
{
	for (int i = 0; i < tr->targets.n; i++) {
		struct target *t = &tr->targets.t[i];

		if (!t->exec_pending)
			continue;
		t->exec_pending = false;
		if (t->alive && t->probes.nlinks && !tr->launched) /* held at their execs */
			reprobe(tr, t);
	}
}

/* What traced processes mapped since (dlopen) gets its unwind table, and its
 * file stays known to the symbolizer once unmapped (dlclose); now and then
 * the tables no traced process maps any more are freed (with every process
 * probed: those no process maps; walks ask for the tables they need). */
static void follow_maps(struct tracer *tr)
{
	pid_t *pids = xcalloc(tr->targets.n + 1, sizeof(*pids));
	size_t n = 0;

	unwinder_serve(&tr->unwind);
	for (int i = 0; i < tr->targets.n; i++) {
		struct target *t = &tr->targets.t[i];

		if (!t->alive || (!t->probes.nlinks && !t->pages))
			continue;
		symbolizer_refresh(&t->sym);
		unwinder_add_pid(&tr->unwind, t->pid);
		pids[n++] = t->pid;
	}
	if (tr->samples % UNWIND_SAMPLES == 0)
		unwinder_collect(&tr->unwind, pids, n, tr->probes.nlinks > 0);
	free(pids);
}

static void sample(struct tracer *tr)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	tr->last_sample_time = (double)now.tv_sec + now.tv_nsec / 1e9;
	tr->samples++;
	follow_maps(tr);
	watch_lifecycle(&tr->targets, bpf_map__fd(tr->skel->maps.lifecycle));
	probe_born(tr);
	reprobe_execs(tr);
	if (tr->samples % SWEEP_SAMPLES == 0)
		targets_sweep_stacks(&tr->targets);
	if (tr->targets.watching) {
		/* Now and then, what a full lifecycle map turned away. */
		if (tr->samples % RESCAN_SAMPLES == 0)
			watch_scan(&tr->targets);
		probe_growing(tr);
		unprobe_settled(tr);
		targets_forget_unprobed(&tr->targets);
	}
	targets_sample(&tr->targets);
	publish_metrics(tr);
	if (tr->curve_csv && !tr->output_failed) {
		int n;
		struct curve_report *curves = targets_curves(&tr->targets, &n);

		if (csv_rows(tr->curve_csv, curves, n))
			output_failed(tr, "--curve", tr->opt.curve_path);
		free(curves);
	}
}

/* The time of the next tick: a period on, or after a stall (probes
 * attaching to many processes), a period from now: no burst to catch up. */
static double next_tick(double tick, double period)
{
	double now = monotonic_s();

	return tick + period > now ? tick + period : now + period;
}

/* The final report. A command still running then runs on without probes,
 * and the tracer waits for its end: true if there is one to wait for. */
static bool finish(struct tracer *tr)
{
	struct target *cmd = tr->launched ? &tr->targets.t[0] : NULL;

	sample(tr);
	if (tr->opt.scan_s)
		scan_all(tr);
	write_report(tr, true);
	tr->finished = true;
	if (!cmd || !cmd->alive)
		return false;
	for (int i = 0; i < tr->targets.n; i++)
		probes_detach_later(&tr->targets.t[i].probes, !tr->targets.t[i].alive);
	return true;
}

static void run(struct tracer *tr)
{
	double period = tr->opt.interval_s / 4 < 0.5 ? tr->opt.interval_s / 4 : 0.5;
	double next = monotonic_s() + tr->opt.interval_s, next_sample = monotonic_s() + period;

	for (;;) {
		struct pollfd fds[MAX_PIDS + 1] = {{.fd = tr->sigfd, .events = POLLIN}};
		double wait = (next < next_sample ? next : next_sample) - monotonic_s();
		int nfds = 1, timeout = wait > 0 ? (int)(wait * 1000) + 1 : 0;

		for (int i = 0; i < tr->targets.n; i++)
			if (tr->targets.t[i].pidfd >= 0 && nfds < MAX_PIDS + 1)
				fds[nfds++] =
				    (struct pollfd){.fd = tr->targets.t[i].pidfd, .events = POLLIN};
		if (tr->finished) /* only the command's end is awaited */
			timeout = -1;
		if (poll(fds, nfds, timeout) < 0 && errno != EINTR)
			return;
		if (handle_signals(tr))
			return;
		if (tr->finished)
			continue;
		if (tr->scan_wanted) {
			tr->scan_wanted = false;
			scan_all(tr);
		}
		if (tr->output_failed || tr->stdout_closed) {
			if (!finish(tr))
				return;
			continue;
		}
		watch_pidfds(tr, fds, nfds);
		if (!tr->targets.every_process && all_exited(&tr->targets))
			return;
		if (monotonic_s() >= next_sample) {
			sample(tr);
			if (tr->opt.scan_s)
				scan_due(tr);
			next_sample = next_tick(next_sample, period);
		}
		if (monotonic_s() < next)
			continue;
		next = next_tick(next, tr->opt.interval_s);
		if (tr->opt.count && tr->reports + 1 >= tr->opt.count) {
			if (!finish(tr))
				return;
			warnx_("%ld reports written; pid %d (%s) runs on untraced, and memleak-bpf "
			       "exits when it does, with its status",
			       tr->reports, tr->child.pid, tr->targets.t[0].comm);
			continue;
		}
		write_report(tr, false);
	}
}

/* Every probe link is a file descriptor: a process's allocator takes about
 * twenty, and -p takes them per process. The soft limit goes to the hard one. */
static void raise_fd_limit(void)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

/* The profile files can be written: each starts empty. */
static int check_profiles(const struct options *o)
{
	struct report none = {0};

	if (o->folded_path && report_folded(o->folded_path, &none)) {
		warnx_("cannot write --folded %s: %s", o->folded_path, strerror(errno));
		return -1;
	}
	if (o->pprof_path && report_pprof(o->pprof_path, &none)) {
		warnx_("cannot write --pprof %s: %s", o->pprof_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int start(struct tracer *tr)
{
	char err[1024] = "";

	/* First: the command inherits what it would untraced (signal mask,
	 * limits), not what the tracer sets up below. */
	if (tr->opt.command) {
		if (launch_fork(tr->opt.command, &tr->child, err, sizeof(err))) {
			warnx_("%s", err);
			return -1;
		}
		tr->launched = true;
		tr->child.follow = !tr->opt.no_follow;
	}
	tr->out = stdout;
	if (tr->opt.output_path && !(tr->out = fopen(tr->opt.output_path, "we"))) {
		warnx_("cannot write --output %s: %s", tr->opt.output_path, strerror(errno));
		return -1;
	}
	if (tr->opt.curve_path &&
	    !(tr->curve_csv = csv_open(tr->opt.curve_path, err, sizeof(err)))) {
		warnx_("%s", err);
		return -1;
	}
	if (tr->opt.plot_path && svg_check(tr->opt.plot_path, err, sizeof(err))) {
		warnx_("%s", err);
		return -1;
	}
	raise_fd_limit();
	/* Before any thread starts (the exporter's): SIGINT and SIGTERM come to
	 * the signalfd, never to a thread that would take the default action. */
	if (setup_signals(tr)) {
		warnx_("cannot set up signal handling: %s", strerror(errno));
		return -1;
	}
	if (check_profiles(&tr->opt))
		return -1;
	if (tr->opt.listen.ss_family &&
	    !(tr->exporter = exporter_start(&tr->opt.listen, err, sizeof(err)))) {
		warnx_("%s", err);
		return -1;
	}

	tr->pages = tr->opt.pages ||
		    (!tr->opt.command && !tr->opt.npids && !tr->opt.all_stacks && !tr->opt.exact);
	if (check_privileges(err, sizeof(err)) || check_btf(err, sizeof(err)) ||
	    ensure_tracefs(err, sizeof(err)) || load_bpf(tr, err, sizeof(err)) ||
	    start_kernel(tr, err, sizeof(err))) {
		warnx_("%s", err[0] ? err : strerror(errno));
		return -1;
	}
	tr->targets.start_time = monotonic_s();
	if (tr->opt.command ? start_command(tr, err, sizeof(err))
	    : tr->opt.npids ? start_pids(tr, err, sizeof(err))
			    : start_system(tr, err, sizeof(err))) {
		warnx_("%s", err);
		return -1;
	}
	if (tr->kmem)
		targets_add(&tr->targets, KERNEL_OWNER);
	report_metrics(tr, &(struct report){0}); /* the tracer's own, until the first report */
	if (tr->exporter)
		fprintf(stderr, "memleak-bpf: serving metrics at http://%s/metrics\n",
			exporter_address(&tr->opt.listen));
	if (tr->targets.watching)
		fprintf(stderr,
			"memleak-bpf: watching %d processes; %s when a curve leaves its band; "
			"Ctrl-C to stop\n",
			tr->targets.n,
			tr->pages ? "resident pages are counted" : "allocators are probed");
	else if (!tr->opt.command && tr->opt.pages)
		fprintf(stderr,
			"memleak-bpf: counting the resident pages of %d processes; Ctrl-C to "
			"stop\n",
			tr->targets.n);
	else if (!tr->opt.command)
		fprintf(stderr, "memleak-bpf: tracing %d allocator functions; Ctrl-C to stop\n",
			tr->probes.nfuncs + (tr->targets.n ? tr->targets.t[0].probes.nfuncs : 0));

	return 0;
}

/* The command was ended by sig: so is the tracer, for its caller to see the
 * same wait status (its core, if any, is the command's). */
static void end_by_signal(int sig)
{
	struct rlimit none = {0, 0};
	sigset_t set;

	setrlimit(RLIMIT_CORE, &none);
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
}

int main(int argc, char **argv)
{
	static struct tracer tr = {.sigfd = -1};
	char err[512];
	int status, signal_out = 0;

	switch (options_parse(&tr.opt, argc, argv, err, sizeof(err))) {
	case PARSE_EXIT:
		return EXIT_OK;
	case PARSE_USAGE:
		warnx_("%s; see memleak-bpf --help", err);
		return EXIT_USAGE;
	case PARSE_OK:
		break;
	}
	libbpf_set_print(libbpf_log);
	if (start(&tr)) {
		status = EXIT_RUNTIME;
		if (tr.launched)
			launch_abort(&tr.child);
	} else {
		run(&tr);
		if (!tr.finished)
			finish(&tr);
		status = EXIT_OK;
		if (tr.launched && WIFEXITED(tr.child.wstatus))
			status = WEXITSTATUS(tr.child.wstatus);
		if (tr.launched && WIFSIGNALED(tr.child.wstatus))
			status = 128 + (signal_out = WTERMSIG(tr.child.wstatus));
		if (!tr.launched && tr.stdout_closed)
			signal_out = SIGPIPE; /* as any writer into a pipe nobody reads */
		if (tr.opt.fail_on_leak && (tr.leak_reported || tr.leak_scanned))
			status = EXIT_LEAK, signal_out = 0;
		if (tr.output_failed)
			status = EXIT_RUNTIME, signal_out = 0;
	}
	exporter_stop(tr.exporter);
	free(tr.metrics_procs[0]);
	free(tr.metrics_procs[1]);
	if (tr.curve_csv)
		fclose(tr.curve_csv);
	if (tr.out && tr.out != stdout)
		fclose(tr.out);
	probes_detach_later(&tr.probes, false);
	unwinder_free(&tr.unwind);
	targets_free(&tr.targets);
	probes_settle();
	if (tr.kmem)
		kmem_stop(tr.kmem);
	memleak_bpf__destroy(tr.skel);
	if (signal_out)
		end_by_signal(signal_out);
	return status;
}
