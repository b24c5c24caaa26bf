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
#ifndef EBUSY
#define EBUSY 16
#endif

#define TOP_WORDS 128 /* 1 KiB */
#define NEAR_ROWS 32

#define NEAR_AREAS 4

/*
 * A walk is a function of its registers (pc, sp, bp), the allocator's
 * caller it starts from, the tables of an epoch and the stack words it
 * reads. A thread remembers its last walks whose words came from one window
 * of the stack: the same registers and the same words give the same stack,
 * and the frames' rows need not be looked for again (a loop allocating from
 * one place pays one read of the stack and a few compares).
 */
#define MEMO_WALKS 4
#define MEMO_WORDS 32 /* words read, at most: 2 a frame */

struct walk_memo {
	__u64 pc, sp, bp, caller;
	__u64 top; /* the window's address */
	__u64 stack_id;
	__u32 epoch;
	__u32 n; /* words read: their place in the window, and their values */
	__u16 idx[MEMO_WORDS];
	__u64 val[MEMO_WORDS];
};

/* A row a thread's walk used, by object and offset (struct row_key), valid
 * in the epoch it was found in. */
struct near_row {
	__u32 first, off;
	__u32 epoch;
	__u32 pad;
	struct unwind_row row;
};

/* Counted up by the loader each time it frees tables (their rows may go to
 * another object) and each time a process's code area goes away (another
 * object may be mapped there): what a thread remembers of areas and rows
 * from an earlier epoch is not used. */
__u32 unwind_epoch = 1;

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
	__u64 trimmed;	  /* with trim: the first frame left out, 0: none */
	__u32 trim;	  /* leave out the frames in the allocator's library (code_area)
			   * before the first outside it: set by the caller, kept */
	__u32 pad;
	struct code_area area; /* of the last frame's code; count 0: no table */
	__u32 frames;	       /* walked so far */
	__u32 n;	    /* stored in the scratch buffer */
	__u32 how;
	struct stack_frames buf;
	/* The areas and rows this thread's walks used last, in epoch. */
	__u32 epoch;
	__u32 near_next; /* the area slot to take next */
	struct code_area near_areas[NEAR_AREAS];
	struct near_row near[NEAR_ROWS];
	/* A window of the stack, read at once: the saved registers of frames. */
	__u64 top;		    /* its address; 0: none */
	__u64 top_words[TOP_WORDS]; /* from top on */
	/* What this walk read, for its memo: windows, and words of the last. */
	__u32 windows;
	__u32 nread;
	__u16 read_idx[MEMO_WORDS];
	struct walk_memo memo[MEMO_WALKS];
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

/* Code areas of processes (struct proc_areas): at most this many processes
 * have a list; the others' walks ask the kernel for every area. */
#define MAX_AREA_PROCS 4096

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_AREA_PROCS);
	__type(key, __u32);
	__type(value, struct proc_areas);
} areas SEC(".maps");

struct proc_areas no_areas = {}; /* a new process's list */

/* Times the kernel's map of a process was locked when a walk asked it:
 * each try is immediate, and a writer holds the lock for microseconds. */
#define FIND_VMA_TRIES 4

static __always_inline bool in_area(const struct code_area *a, __u64 pc)
{
	return pc >= a->start && pc < a->end;
}

/* pc's area in the process's list: 0, or -1 if it is not there. */
static __always_inline int listed_area(struct walk *w, struct proc_areas *pa, __u64 pc)
{
	__u32 n = pa->n;

	for (int i = 0; i < MAX_AREAS; i++) {
		struct code_area *a = &pa->a[i];
		__u64 end;

		if ((__u32)i >= n)
			break;
		end = a->end; /* written last: the slot is whole once it is set */
		asm volatile("" ::: "memory");
		if (pc < end && pc >= a->start) {
			w->area = *a;
			w->area.end = end;
			return 0;
		}
	}
	return -1;
}

/* Add an area the kernel found to the process's list, for the next walks. */
static __always_inline void list_area(__u32 tgid, struct proc_areas *pa, const struct walk *w)
{
	struct code_area *a;
	__u32 i;

	if (!pa) {
		bpf_map_update_elem(&areas, &tgid, &no_areas, BPF_NOEXIST);
		pa = bpf_map_lookup_elem(&areas, &tgid);
		if (!pa)
			return;
	}
	if (pa->n >= MAX_AREAS)
		return;
	i = __sync_fetch_and_add(&pa->n, 1);
	if (i >= MAX_AREAS)
		return;
	a = &pa->a[i & (MAX_AREAS - 1)];
	a->start = w->area.start;
	a->off = w->area.off;
	a->first = w->area.first;
	a->count = w->area.count;
	a->allocator = w->area.allocator;
	asm volatile("" ::: "memory");
	a->end = w->area.end;
}

/* The thread remembers the area found last, in place of the oldest. */
static __always_inline void keep_near(struct walk *w)
{
	w->near_areas[w->near_next & (NEAR_AREAS - 1)] = w->area;
	w->near_next++;
}

/* pc's area among those the thread remembers: 0, or -1. */
static __always_inline int near_area(struct walk *w, __u64 pc)
{
	for (int i = 0; i < NEAR_AREAS; i++)
		if (in_area(&w->near_areas[i], pc)) {
			w->area = w->near_areas[i];
			return 0;
		}
	return -1;
}

/* Find pc's memory area and its object's table: the last frame's, one the
 * thread remembers, the process's list, or the kernel's map (added to the
 * list). 0, -1 if the area is not known, 1 if its object's table is not built. */
static __always_inline int find_area(struct walk *w, __u64 pc)
{
	struct unwind_span *span;
	struct proc_areas *pa;
	struct area a = {};
	long err = 0;
	__u32 tgid;

	/* Most frames end here: nothing else is paid for them. */
	if (in_area(&w->area, pc) || near_area(w, pc) == 0)
		return 0;
	tgid = current_tgid();
	pa = bpf_map_lookup_elem(&areas, &tgid);
	if (pa && listed_area(w, pa, pc) == 0) {
		keep_near(w);
		return 0;
	}
	for (int i = 0; i < FIND_VMA_TRIES; i++) {
		err = bpf_find_vma(bpf_get_current_task_btf(), pc, area_found, &a, 0);
		if (err != -EBUSY)
			break;
	}
	if (err || !a.end)
		return -1;
	w->area = (struct code_area){.start = a.start, .end = a.end, .off = a.off};
	if (a.file) {
		span = bpf_map_lookup_elem(&unwind_objs, &a.key);
		if (!span) {
			/* Not built yet (mapped since the loader last looked: a
			 * dlopen): the walk stops rather than guess, and the loader
			 * is asked for it. */
			bpf_map_update_elem(&unwind_wanted, &a.key, &tgid, BPF_NOEXIST);
			w->area.end = 0;
			return 1;
		}
		w->area.first = span->first;
		w->area.count = span->count;
		w->area.allocator = span->allocator;
	}
	list_area(tgid, pa, w);
	keep_near(w);
	return 0;
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

/*
 * The row found for each code offset a walk met, by object: a binary search
 * of a large table misses the cache at nearly every step, and the same
 * return addresses come back walk after walk. Rows of an object stay while
 * its table does (the loader empties this when it frees tables).
 */
#define ROW_CACHE_ENTRIES (1 << 15)

struct row_key {
	__u32 first; /* the object's first row */
	__u32 off;   /* the code's file offset */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ROW_CACHE_ENTRIES);
	__type(key, struct row_key);
	__type(value, struct unwind_row);
} row_cache SEC(".maps");

/* The row for off in the last area's object (CFA_NONE if its table has
 * none): the thread's own memory of it, else the shared cache, else the
 * table's. */
static __always_inline struct unwind_row row_at(struct walk *w, __u32 off)
{
	__u32 first = w->area.first;
	struct row_key key = {.first = first, .off = off};
	struct near_row *near = &w->near[(off ^ (off >> 7) ^ first) & (NEAR_ROWS - 1)];
	struct unwind_row *row, none = {};

	if (near->off == off && near->first == first && near->epoch == w->epoch)
		return near->row;
	row = bpf_map_lookup_elem(&row_cache, &key);
	if (!row) {
		row = find_row(first, w->area.count, off);
		bpf_map_update_elem(&row_cache, &key, row ? row : &none, BPF_ANY);
	}
	near->first = first;
	near->off = off;
	near->epoch = w->epoch;
	near->row = row ? *row : none;
	return near->row;
}

/* Read the word at addr: from the window of the stack read last, or a new
 * window from addr on (the walk climbs the stack), or alone (within the
 * window's length of the stack's end). */
static __always_inline int read_word(struct walk *w, __u64 addr, __u64 *out)
{
	__u64 at = addr - w->top, i = at >> 3;

	if (!w->top || i >= TOP_WORDS || (at & 7)) {
		w->windows += 2; /* a word alone, or a second window: no memo */
		if (bpf_probe_read_user(w->top_words, sizeof(w->top_words), (void *)addr)) {
			w->top = 0;
			return bpf_probe_read_user(out, sizeof(*out), (void *)addr);
		}
		w->windows--;
		w->top = addr;
		i = 0;
	}
	asm volatile("%0 &= %1" : "+r"(i) : "i"(TOP_WORDS - 1)); /* for the verifier */
	*out = w->top_words[i];
	if (w->nread < MEMO_WORDS)
		w->read_idx[w->nread] = i;
	w->nread++;
	return 0;
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
	/* The lower address first: a window read covers what is above it. */
	if ((row->rbp < 0 && read_word(w, cfa + row->rbp * 8, &bp)) ||
	    read_word(w, cfa - 8, &ra)) {
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
	struct unwind_row row = {};
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
	/* The only frame stored is the allocator library's: taken back. */
	if (w->trim && w->n == 1 && w->area.allocator) {
		if (!w->trimmed)
			w->trimmed = pc;
		w->n = 0;
	}
	if (w->area.count)
		row = row_at(w, lookup - w->area.start + w->area.off);
	r = row.cfa != CFA_NONE ? cfi_step(w, &row) : -1;
	if (r < 0)
		r = fp_step(w);
	if (!r && w->sp <= sp) {
		w->how |= UNWIND_CUT_READ; /* a caller's frame lies above its callee's */
		return 1;
	}
	return r;
}

/* A window of the stack read to be looked at at once (a memo's check, an
 * operator new's caller): one per CPU, where a read costs less than into
 * the thread's storage (the kernel's hardened usercopy checks a slab
 * object's bounds at each copy into one). A thread that preempts this one
 * may take it meanwhile: its count of uses tells (window_kept). */
struct stack_window {
	__u64 uses;
	__u64 words[TOP_WORDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_window);
} stack_windows SEC(".maps");

/* This CPU's window with len bytes of the stack from addr, and in *uses its
 * count then; NULL if they cannot be read. */
static __always_inline struct stack_window *read_window(__u64 addr, __u32 len, __u64 *uses)
{
	__u32 zero = 0;
	struct stack_window *win = bpf_map_lookup_elem(&stack_windows, &zero);

	if (!win)
		return NULL;
	*uses = ++win->uses;
	return bpf_probe_read_user(win->words, len, (void *)addr) ? NULL : win;
}

/* Whether nobody took the window since it was read. */
static __always_inline bool window_kept(const struct stack_window *win, __u64 uses)
{
	return win->uses == uses;
}

static __always_inline struct walk_memo *memo_of(struct walk *w, __u64 pc, __u64 sp)
{
	return &w->memo[(pc ^ (sp >> 4)) & (MEMO_WALKS - 1)];
}

/* The stack a remembered walk found, if this one is the same: its id, used
 * at now; else 0 (a walk that follows reads the stack again). */
static __always_inline __u64 memo_stack(struct walk *w, struct walk_memo *m, __u64 now)
{
	struct stack_frames *found;
	struct stack_window *win;
	__u32 n = m->n;
	__u64 uses;

	if (m->epoch != unwind_epoch || m->pc != w->pc || m->sp != w->sp || m->bp != w->bp ||
	    m->caller != w->caller || !n ||
	    !(win = read_window(m->top, sizeof(win->words), &uses)))
		return 0;
	for (int i = 0; i < MEMO_WORDS; i++) {
		if ((__u32)i >= n)
			break;
		if (win->words[m->idx[i] & (TOP_WORDS - 1)] != m->val[i])
			return 0;
	}
	if (!window_kept(win, uses))
		return 0;
	/* The loader may have reclaimed it: then it is walked and stored again. */
	found = bpf_map_lookup_elem(&stacks, &m->stack_id);
	if (!found)
		return 0;
	found->used_ns = now;
	return m->stack_id;
}

/* Remember a walk whose words all came from one window, and that was not
 * cut by anything that may change (a table built later, a busy map). */
static __always_inline void memo_keep(struct walk *w, struct walk_memo *m, __u64 pc, __u64 sp,
				      __u64 bp, __u64 caller, __u64 stack_id)
{
	__u32 n = w->nread;

	if (!stack_id || w->windows != 1 || n > MEMO_WORDS || (w->how & (UNWIND_CUT | UNWIND_FP)))
		return;
	m->epoch = 0; /* whole again below */
	for (int i = 0; i < MEMO_WORDS; i++) {
		__u16 idx;

		if ((__u32)i >= n)
			break;
		idx = w->read_idx[i] & (TOP_WORDS - 1);
		m->idx[i] = idx;
		m->val[i] = w->top_words[idx];
	}
	m->n = n;
	m->pc = pc;
	m->sp = sp;
	m->bp = bp;
	m->caller = caller;
	m->top = w->top;
	m->stack_id = stack_id;
	m->epoch = unwind_epoch;
}

/*
 * Walk the user stack from the registers regs and store it, used at now; 0 if
 * it could not be. With caller given, the stack starts at that frame: those above it are
 * the allocator's. ctx is the program's own (the kernel's walker, for frame
 * pointers only, takes the current thread's user registers from it).
 */
static __always_inline __u64 user_stack(void *ctx, struct pt_regs *regs, struct walk *w,
					 __u64 caller, __u64 now)
{
	struct walk_ref ref = {.w = w};
	struct walk_memo *m;
	__u64 id;
	long loops;

	if (frame_pointers_only) {
		w->buf.how = UNWIND_FP;
		return store_stack(&w->buf,
				   bpf_get_stack(ctx, w->buf.ips, sizeof(w->buf.ips), BPF_F_USER_STACK),
				   now);
	}
	w->pc = regs->ip;
	w->sp = regs->sp;
	w->bp = regs->bp;
	w->caller = caller;
	w->top = 0;
	w->windows = 0;
	m = memo_of(w, w->pc, w->sp);
	id = memo_stack(w, m, now);
	if (id)
		return id;
	w->nread = 0;
	w->area.end = 0;
	w->frames = w->n = w->how = 0;
	w->trimmed = 0;
	if (w->epoch != unwind_epoch) {
		w->epoch = unwind_epoch;
		for (int i = 0; i < NEAR_AREAS; i++)
			w->near_areas[i].end = 0;
	}
	loops = bpf_loop(MAX_FRAMES + SKIP_FRAMES, walk_step, &ref, 0);
	if (loops == MAX_FRAMES + SKIP_FRAMES)
		w->how |= UNWIND_CUT_DEPTH;
	if (!w->n && w->trimmed) /* all of it in the allocator's library: its first frame */
		w->buf.ips[w->n++] = w->trimmed;
	w->buf.how = w->how;
	if (w->n < MAX_FRAMES)
		w->buf.ips[w->n & (MAX_FRAMES - 1)] = 0;
	id = store_stack(&w->buf, w->n * 8, now);
	memo_keep(w, m, regs->ip, regs->sp, regs->bp, caller, id);
	return id;
}

#endif
