#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
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

static ssize_t read_remote(void *ctx, __u64 addr, void *buf, size_t len)
{
	const struct remote *rm = ctx;
	struct iovec local = {.iov_base = buf, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};

	return process_vm_readv(rm->pid, &local, 1, &remote, 1, 0);
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

struct block_list {
	struct reach_block *b;
	size_t n, cap;
};

static void add_block(void *ctx, __u64 addr, __u64 size, __u64 stack_id)
{
	struct block_list *l = ctx;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		l->b = xrealloc(l->b, l->cap * sizeof(*l->b));
	}
	l->b[l->n++] = (struct reach_block){.addr = addr, .size = size, .stack_id = stack_id};
}

static int by_stack(const void *a, const void *b)
{
	const struct scan_stack *x = a, *y = b;

	return x->stack_id < y->stack_id ? -1 : x->stack_id > y->stack_id;
}

/* Each stack's kinds, summed through a hash of the stacks (open
 * addressing, grown at half full), then sorted by stack id. */
static void sum_stacks(const struct reach_block *b, size_t n, struct scan_result *out)
{
	size_t mask = 1023, used = 0;
	struct scan_stack *t = xcalloc(mask + 1, sizeof(*t));

	for (size_t i = 0; i < n; i++) {
		__u64 key = b[i].stack_id + 1; /* 0: an empty slot */
		size_t k = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 40) & mask;

		while (t[k].stack_id && t[k].stack_id != key)
			k = (k + 1) & mask;
		if (!t[k].stack_id) {
			t[k].stack_id = key;
			if (++used > mask / 2) { /* grow: every stack to its new slot */
				struct scan_stack *old = t;
				size_t old_mask = mask;

				mask = 2 * mask + 1;
				t = xcalloc(mask + 1, sizeof(*t));
				for (size_t j = 0; j <= old_mask; j++) {
					size_t h;

					if (!old[j].stack_id)
						continue;
					h = (size_t)((old[j].stack_id * 0x9e3779b97f4a7c15ULL) >> 40) &
					    mask;
					while (t[h].stack_id)
						h = (h + 1) & mask;
					t[h] = old[j];
				}
				free(old);
				i--; /* again, into the grown table */
				continue;
			}
		}
		t[k].k.bytes[b[i].kind] += b[i].size;
		t[k].k.allocs[b[i].kind]++;
		out->sum.total.bytes[b[i].kind] += b[i].size;
		out->sum.total.allocs[b[i].kind]++;
	}
	out->stacks = xcalloc(used ? used : 1, sizeof(*out->stacks));
	for (size_t j = 0; j <= mask; j++) {
		if (!t[j].stack_id)
			continue;
		out->stacks[out->nstacks] = t[j];
		out->stacks[out->nstacks++].stack_id--;
	}
	free(t);
	qsort(out->stacks, out->nstacks, sizeof(*out->stacks), by_stack);
}

int scan_held(const struct heap_maps *m, pid_t pid, const struct user_regs_struct *regs, size_t n,
	      struct scan_result *out, char *err, size_t errlen)
{
	struct proc_counts pc = snapshot_proc(m, (__u32)pid, VIEW_LIVE);
	struct counts c = pc.c;
	struct remote rm = {.pid = pid};
	struct reach_mem mem = {.read = read_remote, .ctx = &rm};
	struct block_list l = {0};
	struct timespec now;
	struct reach r;
	int e;

	memset(out, 0, sizeof(*out));
	clock_gettime(CLOCK_REALTIME, &now);
	out->sum.time = (double)now.tv_sec + now.tv_nsec / 1e9;
	if (c.allocs == c.frees)
		return 0; /* it holds no block: none is lost (a walk of the table spared) */
	/* Room for the blocks it holds, as counted, and some. */
	l.cap = (size_t)(c.allocs - c.frees) + (size_t)(c.allocs - c.frees) / 16 + 1024;
	l.b = xcalloc(l.cap, sizeof(*l.b));
	if ((e = heap_blocks_of(m, (__u32)pid, pc.image, add_block, &l))) {
		free(l.b);
		snprintf(err, errlen, "pid %d cannot be scanned: its blocks cannot be read: %s",
			 pid, strerror(-e));
		return -1;
	}
	if (reach_init(&r, l.b, l.n, &mem)) {
		free(l.b);
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
	}
	reach_free(&r);
	if (!e)
		sum_stacks(l.b, l.n, out);
	free(l.b);
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
	regs = freeze_regs(&f);
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
