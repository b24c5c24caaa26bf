#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "freeze.h"
#include "scan.h"
#include "util.h"

#define PAGE_SIZE_ 4096ULL
#define RED_ZONE   128 /* below a stack pointer, a leaf function's own (x86-64 ABI) */
#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)
#define PAGEMAP_BATCH	4096

struct remote {
	pid_t pid;
};

static ssize_t read_remote(void *ctx, const struct iovec *iov, int n, void *buf)
{
	const struct remote *rm = ctx;
	size_t len = 0;
	struct iovec local;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	local = (struct iovec){.iov_base = buf, .iov_len = len};
	return process_vm_readv(rm->pid, &local, 1, iov, (unsigned long)n, 0);
}

/* Memory nothing of the program's can point into: the kernel's pages and
 * devices' (a read of those has effects, or fails). */
static bool not_memory(const char *path)
{
	if (!strncmp(path, "/dev/", 5))
		return strncmp(path, "/dev/zero", 9) && strncmp(path, "/dev/shm/", 9);
	return !strcmp(path, "[vvar]") || !strcmp(path, "[vvar_vclock]") ||
	       !strcmp(path, "[vsyscall]");
}

/* [from, end) of a writable area, read where its pages are in memory or
 * swapped out: a page never touched holds zeros. */
static void scan_resident(struct reach *r, int pagemap, __u64 from, __u64 end)
{
	__u64 ents[PAGEMAP_BATCH];

	for (__u64 start = from & ~(PAGE_SIZE_ - 1); start < end;) {
		size_t n = (end - start + PAGE_SIZE_ - 1) / PAGE_SIZE_;
		__u64 run = 0; /* start of the pages in memory, 0: none */

		if (n > PAGEMAP_BATCH)
			n = PAGEMAP_BATCH;
		if (pagemap < 0 || pread(pagemap, ents, n * sizeof(*ents),
					 (off_t)(start / PAGE_SIZE_ * sizeof(*ents))) !=
				       (ssize_t)(n * sizeof(*ents))) {
			reach_range(r, start > from ? start : from, end); /* no page map: all */
			return;
		}
		for (size_t i = 0; i <= n; i++) {
			__u64 at = start + i * PAGE_SIZE_;
			bool in = i < n && (ents[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED));

			if (in && !run)
				run = at > from ? at : from;
			if (!in && run) {
				reach_range(r, run, at < end ? at : end);
				run = 0;
			}
		}
		start += n * PAGE_SIZE_;
	}
}

/* Where the area [start, end) is read from: a stack's from the lowest
 * stack pointer in it, less the red zone. */
static __u64 stack_floor(const struct user_regs_struct *regs, size_t n, __u64 start, __u64 end)
{
	__u64 low = end;

	for (size_t i = 0; i < n; i++)
		if (regs[i].rsp >= start && regs[i].rsp < end && regs[i].rsp < low)
			low = regs[i].rsp;
	if (low == end)
		return start;
	low = (low - RED_ZONE) & ~7ULL;
	return low > start ? low : start;
}

/* Every writable area of the process but the part of a thread's stack
 * below its stack pointer (and red zone). */
static int scan_areas(struct reach *r, pid_t pid, const struct user_regs_struct *regs, size_t n,
		      char *err, size_t errlen)
{
	char path[64], line[4096];
	int pagemap;
	FILE *maps;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	if (!(maps = fopen(path, "re"))) {
		snprintf(err, errlen, "pid %d cannot be scanned: %s: %s", pid, path,
			 strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	pagemap = open(path, O_RDONLY | O_CLOEXEC);
	while (fgets(line, sizeof(line), maps)) {
		unsigned long long start, end;
		char perms[8], name[4096] = "";

		if (sscanf(line, "%llx-%llx %7s %*s %*s %*s %4095[^\n]", &start, &end, perms,
			   name) < 3)
			continue;
		if (perms[0] != 'r' || perms[1] != 'w' || not_memory(name))
			continue;
		scan_resident(r, pagemap, stack_floor(regs, n, start, end), end);
	}
	if (pagemap >= 0)
		close(pagemap);
	fclose(maps);
	return 0;
}

static int by_stack(const void *a, const void *b)
{
	const struct reach_block *x = a, *y = b;

	return x->stack_id < y->stack_id ? -1 : x->stack_id > y->stack_id;
}

static void sum_stacks(struct reach_block *b, size_t n, struct scan_result *out)
{
	qsort(b, n, sizeof(*b), by_stack);
	out->stacks = xcalloc(n ? n : 1, sizeof(*out->stacks));
	for (size_t i = 0; i < n; i++) {
		struct scan_stack *s;

		if (!out->nstacks || out->stacks[out->nstacks - 1].stack_id != b[i].stack_id)
			out->stacks[out->nstacks++].stack_id = b[i].stack_id;
		s = &out->stacks[out->nstacks - 1];
		s->k.bytes[b[i].kind] += b[i].size;
		s->k.allocs[b[i].kind]++;
		out->sum.total.bytes[b[i].kind] += b[i].size;
		out->sum.total.allocs[b[i].kind]++;
	}
}

int scan_held(const struct heap_maps *m, pid_t pid, const struct user_regs_struct *regs, size_t n,
	      struct scan_result *out, char *err, size_t errlen)
{
	struct remote rm = {.pid = pid};
	struct reach_mem mem = {.read = read_remote, .ctx = &rm};
	struct live_block *live;
	struct reach_block *b;
	struct timespec now;
	struct reach r;
	size_t nb;
	int e;

	memset(out, 0, sizeof(*out));
	clock_gettime(CLOCK_REALTIME, &now);
	out->sum.time = (double)now.tv_sec + now.tv_nsec / 1e9;
	if ((e = heap_blocks_of(m, (__u32)pid, &live, &nb))) {
		free(live);
		snprintf(err, errlen, "pid %d cannot be scanned: its blocks cannot be read: %s",
			 pid, strerror(-e));
		return -1;
	}
	b = xcalloc(nb ? nb : 1, sizeof(*b));
	for (size_t i = 0; i < nb; i++)
		b[i] = (struct reach_block){
		    .addr = live[i].addr, .size = live[i].size, .stack_id = live[i].stack_id};
	free(live);
	if (reach_init(&r, b, nb, &mem)) {
		free(b);
		snprintf(err, errlen, "pid %d cannot be scanned: out of memory", pid);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		reach_words(&r, (const __u64 *)&regs[i], sizeof(regs[i]) / sizeof(__u64));
	e = scan_areas(&r, pid, regs, n, err, errlen);
	if (!e) {
		reach_finish(&r);
		out->sum.scanned_bytes = r.scanned_bytes;
		out->sum.unread_bytes = r.unread_bytes;
		sum_stacks(b, nb, out);
	}
	reach_free(&r);
	free(b);
	return e;
}

int scan_live(const struct heap_maps *m, pid_t pid, struct scan_result *out, char *err,
	      size_t errlen)
{
	struct user_regs_struct *regs;
	struct freeze f;
	int e;

	if (freeze_process(pid, &f, err, errlen))
		return -1;
	regs = xcalloc(f.n, sizeof(*regs));
	for (size_t i = 0; i < f.n; i++)
		regs[i] = f.t[i].regs;
	e = scan_held(m, pid, regs, f.n, out, err, errlen);
	freeze_release(&f);
	free(regs);
	return e;
}

const struct reach_counts *scan_stack_kinds(const struct scan_result *s, __u64 stack_id)
{
	size_t lo = 0, hi = s->nstacks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->stacks[mid].stack_id == stack_id)
			return &s->stacks[mid].k;
		if (s->stacks[mid].stack_id < stack_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void scan_result_free(struct scan_result *s)
{
	free(s->stacks);
	s->stacks = NULL;
	s->nstacks = 0;
}
