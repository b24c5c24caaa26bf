/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Walking a user stack without trusting frame pointers: each frame's code is
 * found in the kernel's own map of the process (bpf_find_vma), its object's
 * unwind table (built by the loader from .eh_frame) says where the caller's
 * frame is, and frame pointers serve only code no table covers (JIT code,
 * objects whose table is not built yet, which the loader is then asked for).
 */
#ifndef UNWIND_BPF_H
#define UNWIND_BPF_H

#include "heap.bpf.h"

#define MAX_UNWIND_ROWS (1 << 22) /* the loader sizes the table; this is the most */
#define SEARCH_STEPS	23	  /* log2(MAX_UNWIND_ROWS) + 1 */
#define SKIP_FRAMES	8	  /* allocator frames above its caller, at most */
#define VM_EXEC_FLAG	0x4

/* Walk frame pointers only, with the kernel's walker (what the benchmark
 * compares the tables with). */
const volatile bool frame_pointers_only = false;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_UNWIND_ROWS);
	__type(key, __u32);
	__type(value, struct unwind_row);
} unwind_rows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_UNWIND_OBJS);
	__type(key, struct unwind_key);
	__type(value, struct unwind_span);
} unwind_objs SEC(".maps");

/* Objects a walk met without a table, and a process that maps them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct unwind_key);
	__type(value, __u32);
} unwind_wanted SEC(".maps");

/* A walk in progress: kept in the thread's own storage (a per-CPU buffer
 * could be taken by a thread that preempts this one). */
struct walk {
	__u64 pc, sp, bp;
	__u64 caller;	  /* frames before it are the allocator's own; 0: none */
	__u64 trampoline; /* where probed returns go instead: set by the caller, kept */
	/* The memory area of the last frame's code, and its object's rows. */
	__u64 vm_start, vm_end, vm_off;
	__u32 first, count; /* count 0: no table */
	__u32 frames;	    /* walked so far */
	__u32 n;	    /* stored in the scratch buffer */
	__u32 how;
	struct stack_frames buf;
};

/* What the loop callbacks get: pointers into the thread's storage. */
struct walk_ref {
	struct walk *w;
};

/* A memory area, as bpf_find_vma finds it. */
struct area {
	__u64 start, end, off;
	struct unwind_key key;
	bool file; /* code mapped from a file */
};

static long area_found(struct task_struct *task, struct vm_area_struct *vma, struct area *a)
{
	struct file *file = vma->vm_file;

	a->start = vma->vm_start;
	a->end = vma->vm_end;
	a->off = vma->vm_pgoff << 12;
	a->file = file && (vma->vm_flags & VM_EXEC_FLAG);
	if (a->file) {
		a->key.ino = file->f_inode->i_ino;
		a->key.dev = file->f_inode->i_sb->s_dev;
	}
	return 0;
}

/* Find pc's memory area and its object's table, unless the last one holds it:
 * 0, -1 if the area is not known, 1 if its object's table is not built. */
static __always_inline int find_area(struct walk *w, __u64 pc)
{
	struct unwind_span *span;
	__u32 tgid;
	struct area a = {};

	if (pc >= w->vm_start && pc < w->vm_end)
		return 0;
	w->count = 0;
	if (bpf_find_vma(bpf_get_current_task_btf(), pc, area_found, &a, 0) || !a.end)
		return -1;
	w->vm_start = a.start;
	w->vm_end = a.end;
	w->vm_off = a.off;
	if (!a.file)
		return 0;
	span = bpf_map_lookup_elem(&unwind_objs, &a.key);
	if (span) {
		w->first = span->first;
		w->count = span->count;
		return 0;
	}
	/* Not built yet (mapped since the loader last looked: a dlopen): the
	 * walk stops rather than guess, and the loader is asked for it. */
	tgid = current_tgid();
	bpf_map_update_elem(&unwind_wanted, &a.key, &tgid, BPF_NOEXIST);
	return 1;
}

struct search {
	__u32 lo, hi; /* the row sought is in [lo - 1, hi) */
	__u32 off;
};

static long search_step(__u32 i, struct search *s)
{
	__u32 mid = s->lo + (s->hi - s->lo) / 2;
	struct unwind_row *row;

	if (s->lo >= s->hi || !(row = bpf_map_lookup_elem(&unwind_rows, &mid)))
		return 1;
	if (row->off <= s->off)
		s->lo = mid + 1;
	else
		s->hi = mid;
	return 0;
}

/* The last of the rows [first, first + count) starting at or before off. */
static __always_inline struct unwind_row *find_row(__u32 first, __u32 count, __u32 off)
{
	struct search s = {.lo = first, .hi = first + count, .off = off};

	bpf_loop(SEARCH_STEPS, search_step, &s, 0);
	if (s.lo == first)
		return NULL;
	s.lo--;
	return bpf_map_lookup_elem(&unwind_rows, &s.lo);
}

static __always_inline int read_word(__u64 addr, __u64 *out)
{
	return bpf_probe_read_user(out, sizeof(*out), (void *)addr);
}

/* Step to the caller through a table row: 1 when the walk ends. */
static __always_inline int cfi_step(struct walk *w, const struct unwind_row *row)
{
	__u64 cfa, ra, bp = w->bp;

	switch (row->cfa) {
	case CFA_END:
		return 1;
	case CFA_RSP:
		cfa = w->sp + row->cfa_off;
		break;
	case CFA_RBP:
		if (!w->bp) {
			w->how |= UNWIND_CUT_READ;
			return 1;
		}
		cfa = w->bp + row->cfa_off;
		break;
	case CFA_PLT:
		cfa = w->sp + 8 + ((w->pc & 15) >= (__u64)row->cfa_off ? 8 : 0);
		break;
	default:
		return -1;
	}
	if (read_word(cfa - 8, &ra) || (row->rbp < 0 && read_word(cfa + row->rbp * 8, &bp))) {
		w->how |= UNWIND_CUT_READ;
		return 1;
	}
	if (row->rbp == RBP_LOST)
		bp = 0;
	w->how |= UNWIND_CFI;
	w->pc = ra;
	w->sp = cfa;
	w->bp = bp;
	return 0;
}

/* Step to the caller through the frame pointer: 1 when the walk ends. */
static __always_inline int fp_step(struct walk *w)
{
	__u64 next[2];

	if (!w->bp)
		return 1; /* the outermost frame clears it */
	if (w->bp < w->sp || (w->bp & 7) ||
	    bpf_probe_read_user(next, sizeof(next), (void *)w->bp)) {
		w->how |= UNWIND_CUT_TABLE;
		return 1;
	}
	w->how |= UNWIND_FP;
	w->pc = next[1];
	w->sp = w->bp + 16;
	w->bp = next[0];
	return 0;
}

/* Keep pc as the next frame, unless it is the allocator's own: 1 when the
 * walk ends. */
static __always_inline int store_frame(struct walk *w)
{
	__u32 n = w->n;

	if (w->caller) {
		if (w->pc != w->caller) {
			if (w->frames <= SKIP_FRAMES)
				return 0;
			w->pc = w->caller; /* lost on the way: the caller alone */
			w->how |= UNWIND_CUT_CALLER;
		}
		w->caller = 0;
	}
	if (n >= MAX_FRAMES) {
		w->how |= UNWIND_CUT_DEPTH;
		return 1;
	}
	w->buf.ips[n] = w->pc;
	w->n = n + 1;
	return (w->how & UNWIND_CUT_CALLER) ? 1 : 0;
}

static long walk_step(__u32 i, struct walk_ref *ref)
{
	struct walk *w = ref->w;
	__u64 pc = w->pc, sp = w->sp, lookup;
	struct unwind_row *row = NULL;
	int r;

	if (pc < 4096 || (pc >> 47))
		return 1; /* the end, or no user address */
	if (pc == w->trampoline) {
		w->how |= UNWIND_CUT_PROBED;
		return 1;
	}
	if (store_frame(w))
		return 1;
	/* A caller's registers are those at its call, the instruction before the
	 * return address; the first frame's are those at pc itself. */
	lookup = w->frames++ ? pc - 1 : pc;
	r = find_area(w, lookup);
	if (r) {
		w->how |= r < 0 ? UNWIND_CUT_BUSY : UNWIND_CUT_TABLE;
		return 1;
	}
	if (w->count)
		row = find_row(w->first, w->count, lookup - w->vm_start + w->vm_off);
	r = row ? cfi_step(w, row) : -1;
	if (r < 0)
		r = fp_step(w);
	if (!r && w->sp <= sp) {
		w->how |= UNWIND_CUT_READ; /* a caller's frame lies above its callee's */
		return 1;
	}
	return r;
}

/*
 * Walk the stack from the registers in ctx and store it; 0 if it could not
 * be. With caller given, the stack starts at that frame: those above it are
 * the allocator's.
 */
static __always_inline __u64 user_stack(struct pt_regs *ctx, struct walk *w, __u64 caller)
{
	struct walk_ref ref = {.w = w};
	long loops;

	if (frame_pointers_only) {
		w->buf.how = UNWIND_FP;
		return store_stack(
		    &w->buf, bpf_get_stack(ctx, w->buf.ips, sizeof(w->buf.ips), BPF_F_USER_STACK));
	}
	w->pc = PT_REGS_IP(ctx);
	w->sp = PT_REGS_SP(ctx);
	w->bp = ctx->bp;
	w->caller = caller;
	w->vm_start = w->vm_end = 0;
	w->count = w->frames = w->n = w->how = 0;
	loops = bpf_loop(MAX_FRAMES + SKIP_FRAMES, walk_step, &ref, 0);
	if (loops == MAX_FRAMES + SKIP_FRAMES)
		w->how |= UNWIND_CUT_DEPTH;
	w->buf.how = w->how;
	if (w->n < MAX_FRAMES)
		w->buf.ips[w->n & (MAX_FRAMES - 1)] = 0;
	return store_stack(&w->buf, w->n * 8);
}

#endif
