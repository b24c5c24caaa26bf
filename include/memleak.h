/* SPDX-License-Identifier: GPL-2.0 */
/* Types shared by the BPF programs and the userspace loader. */
#ifndef MEMLEAK_H
#define MEMLEAK_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define MAX_FRAMES     64
#define MAX_ALLOCS     (1 << 20)
#define MAX_STACKS     (1 << 15)
#define MAX_STACK_KEYS (1 << 16)
#define MAX_PROCS      (1 << 15)
#define MAX_ENDED      (1 << 12) /* processes ended and not yet retired by the loader */

/* What an allocator call does with its result, for the return probe. */
enum call_kind {
	CALL_ALLOC = 1,	     /* returns a new block of `size` bytes */
	CALL_REALLOC,	     /* moves `ptr` to the returned block of `size` bytes */
	CALL_POSIX_MEMALIGN, /* stores the new block through the pointer `ptr` */
};
/* alloc_end's attach cookie where it sits on a ret instruction (0: a return probe). */
#define END_AT_RET 1

/* What happened to a process since the loader last looked (system-wide). */
enum life_event {
	LIFE_BORN = 1,	/* forked: a new process */
	LIFE_ENDED = 2, /* its last thread exited */
	LIFE_EXEC = 4,	/* a traced process ran a new program */
};

/*
 * A live allocation, keyed by the address space it lives in and its
 * address: a process's heap is its own space (space = tgid; a process
 * sharing its parent's memory, made by clone(CLONE_VM), the parent's); the kernel's
 * objects, pages and per-CPU areas are three spaces shared by all.
 */
struct alloc_key {
	__u32 space;
	__u32 pad;
	__u64 addr;
};

#define KSPACE_SLAB   0xfffffff0u /* kmalloc and kmem_cache objects */
#define KSPACE_PAGE   0xfffffff1u /* pages, keyed by their struct page */
#define KSPACE_PERCPU 0xfffffff2u /* per-CPU areas */
/* --pages: the traced processes' resident pages, keyed by their struct page
 * (in the user heap's table) */
#define PAGE_SPACE 0xfffffff3u

/* The owner of kernel memory that no process asked for (interrupts, kernel
 * threads). */
#define KERNEL_OWNER 0

struct alloc_info {
	__u64 size;
	__u64 time_ns;	/* bpf_ktime_get_ns() at allocation */
	__u64 stack_id; /* key into the stacks map; 0: no stack recorded */
	__u32 owner;	/* the process it is counted to */
	__u32 image;	/* the owner's program image (execs) when allocated */
	__u32 gen;	/* the stack counts row it was counted in: its gen, */
	__u32 row;	/* and its index */
};

/*
 * The live blocks (heap.bpf.h): an array with open addressing, read by the
 * loader through a memory map. A block sits within BLOCK_PROBES slots of its
 * home slot, and the home's reach has bit d set once a block of that home
 * was put d slots on: a search looks there only. A slot's state is its kind
 * (low 2 bits) and a count of its changes (the rest), so that a reader that
 * sees the same state before and after copying a slot has a whole copy.
 */
#define BLOCK_PROBES 32
/* Slots in a page (4 KiB) of the table, whose live blocks BPF counts. */
#define BLOCK_PAGE_SLOTS 64

enum block_kind {
	BLOCK_FREE = 0,
	BLOCK_LIVE = 1,
	BLOCK_BUSY = 2, /* being written or taken */
};

struct block_slot {
	__u32 state;
	__u32 reach; /* as a home */
	struct alloc_key key;
	struct alloc_info info;
};

/* The next state of a slot, of kind k. */
static inline __u32 block_next(__u32 state, __u32 k)
{
	return ((state >> 2) + 1) << 2 | k;
}

/* A block's home slot in a table of mask + 1 slots (a power of 2): its
 * address and space mixed well (a multiplicative hash's low bits repeat
 * for addresses a power of 2 apart, as an allocator's are). */
static inline __u32 block_home(const struct alloc_key *k, __u32 mask)
{
	__u64 h = k->addr ^ ((__u64)k->space << 47);

	h = (h ^ (h >> 33)) * 0xff51afd7ed558ccdULL;
	h = (h ^ (h >> 33)) * 0xc4ceb9fe1a85ec53ULL;
	return (__u32)(h ^ (h >> 33)) & mask;
}

/* The loader's question about one block (heap.bpf.h: block_op). */
enum block_op_kind {
	BLOCK_OP_FIND = 1, /* is it live: its record */
	BLOCK_OP_FORGET,   /* take it out if allocated at info.time_ns, uncounted (its
			    * process is forgotten) */
	BLOCK_OP_INHERIT,  /* record it as key.space's, owned by info.owner, allocated
			    * at info.time_ns (a forked child's copy of its parent's) */
};

struct block_op {
	struct alloc_key key;
	struct alloc_info info; /* its record */
	__u32 op;
	__s32 done; /* 1: found (and taken, for FORGET); 0: not live */
};

/* Allocation and free totals, per process and per (process, stack). */
struct counts {
	__u64 allocs;
	__u64 frees;
	__u64 alloc_bytes;
	__u64 free_bytes;
};

/* A live process (the procs map): the program image it runs (heap.bpf.h:
 * next_image) and its name then (taken in the kernel: a process may be gone
 * before the loader can ask /proc). Its totals are in the proc_rows array,
 * at its image's row: a free finds them from the block's image with no
 * hash lookup. An image whose row is taken is never handed out. */
struct proc_entry {
	__u32 image;
	__u32 pad;
	char comm[16];
};

#define PROC_ROWS (2 * MAX_PROCS)

static inline __u32 proc_row_of(__u32 image)
{
	return image & (PROC_ROWS - 1);
}

struct proc_row {
	__u32 image; /* whose totals; 0: a free row */
	__u32 pad;
	struct counts c;
};

/* A process's totals, and the program image they are of, and its name: as
 * one ended (the ended map), and as the loader reads a live one. */
struct proc_counts {
	struct counts c;
	__u32 image;
	__u32 pad;
	char comm[16];
};

/* Pages mode: the stack id of a process's pages counted without a stack (a
 * walk that failed), so that its rows alone add up to what it holds (the
 * stacks map's ids are odd). */
#define PAGES_NO_STACK 2

struct stack_key {
	__u32 tgid;
	__u32 image; /* the program image (execs) its blocks belong to */
	__u64 stack_id;
};

/*
 * A (process, stack)'s totals, kept so that a report needs no walk of the
 * live blocks: what is outstanding is allocs - frees, and the oldest live
 * block's time is known until that block is freed (then 0 while others
 * live: the loader finds it by a walk when it is to be shown).
 */
struct stack_counts {
	struct counts c;
	__u64 live;	 /* blocks counted here and not freed: its 0 -> 1 sets oldest_ns */
	__u64 oldest_ns; /* time of the oldest live block; 0: none, or not known */
	__u32 gen;	 /* random, per row; 0: a free row. A block is only ever freed
			  * from the row it was counted in, should the loader free it and
			  * BPF take it for another stack */
	__u32 pad;
};

struct stack_frames {
	__u64 ips[MAX_FRAMES];
	__u64 used_ns; /* when an allocation last took this stack */
	__u32 how;     /* a user stack: how it was walked (UNWIND_*) */
	__u32 pad;
};

/* How a user stack was walked, and why it ends where it does if it is
 * cut short (no bit of UNWIND_CUT: it ends at the program's first frame). */
#define UNWIND_CFI	  0x01 /* frames found through unwind tables */
#define UNWIND_FP	  0x02 /* frames found through frame pointers */
#define UNWIND_CUT_DEPTH  0x04 /* it goes on beyond MAX_FRAMES */
#define UNWIND_CUT_READ	  0x08 /* a saved register could not be read */
#define UNWIND_CUT_TABLE  0x10 /* code whose table is not built yet, or has neither */
#define UNWIND_CUT_BUSY	  0x20 /* a frame's code not found: its memory map was locked */
#define UNWIND_CUT_PROBED 0x40 /* a frame whose return is probed (its address is replaced) */
#define UNWIND_CUT_CALLER 0x80 /* the walk lost the allocator's caller: it alone is given */
#define UNWIND_CUT	  0xfc

/*
 * Unwind tables: for each object (executable or library, by the device and
 * inode the kernel maps it from), rows sorted by file offset, each saying
 * from that offset on how to find the caller's frame: the canonical frame
 * address (CFA: the stack pointer before the call) from rsp or rbp, the
 * return address at CFA - 8, and where rbp was saved.
 */
#define MAX_UNWIND_OBJS 4096

enum unwind_cfa {
	CFA_NONE = 0, /* no unwind information here */
	CFA_RSP,      /* CFA = rsp + off */
	CFA_RBP,      /* CFA = rbp + off */
	CFA_PLT,      /* a PLT entry: rsp + 8, + 8 more from byte off of its 16 on */
	CFA_END,      /* the outermost frame: no caller */
};

#define RBP_LOST                                                                                   \
	1 /* rbp is not recoverable in the caller (else 0: unchanged, or                           \
	     negative k: saved at CFA + 8k) */

struct unwind_row {
	__u32 off; /* file offset of the code the row starts at */
	__s16 cfa_off;
	__u8 cfa; /* enum unwind_cfa */
	__s8 rbp;
};

struct unwind_key {
	__u64 dev; /* the kernel's dev_t: major << 20 | minor */
	__u64 ino;
};

struct unwind_span {
	__u32 first; /* index of its first row */
	__u32 count;
	__u32 allocator; /* a shared library that defines malloc (libc's, jemalloc's):
			  * in pages mode a stack starts after its frames */
	__u32 pad;
};

/*
 * A process's code areas, so that a walk finds a frame's object without the
 * kernel's memory map (whose lock a thread growing its heap holds): written
 * by the loader from /proc/PID/maps, and appended to by walks that found an
 * area the loader had not seen yet. Each with its object's rows (count 0:
 * no table, frame pointers serve).
 */
#define MAX_AREAS 64

struct code_area {
	__u64 start, end; /* end 0: a slot being written */
	__u64 off;	  /* the file offset mapped at start */
	__u32 first, count;
	__u32 allocator; /* its object's (unwind_span) */
	__u32 pad;
};

struct proc_areas {
	__u32 n; /* slots taken; those past MAX_AREAS are not */
	__u32 pad;
	struct code_area a[MAX_AREAS];
};

/* A (process, stack)'s totals: a row of the stack_rows array, which the
 * stack_counts hash map names by key, so that a free finds them from its
 * block's record with no hash lookup. The counts and the stacks' last use
 * are also copied out by the kernel into arrays the loader maps (heap.bpf.h:
 * a walk of a hash map from user space costs a system call's work per
 * bucket). */
struct counts_row {
	struct stack_key key;
	struct stack_counts v;
};

struct stack_use_row {
	__u64 stack_id;
	__u64 used_ns;
};

/* What the BPF side had to turn away; all counts only grow. */
struct drops {
	__u64 events;		  /* no per-thread call state could be had */
	__u64 allocs_map_full;	  /* allocations not tracked: allocs map full */
	__u64 stacks;		  /* allocations tracked without their stack, of which: */
	__u64 stacks_map_failed;  /* the stacks map refused it: full, or busy in a nested context */
	__u64 stack_counts_full;  /* the per-(process, stack) counts map was full */
	__u64 procs_map_full;	  /* allocations not counted: procs map full */
	__u64 lifecycle_map_full; /* process births, exits, execs not noted (or ends not kept apart) */
	__u64 calls_too_deep;	  /* allocator calls not followed: a thread had MAX_CALLS in flight */
	__u64 pages_split;	  /* --pages: huge pages freed in pieces (split first): the rest of
				   * each left the counts with its first piece */
	__u64 pages_moved;	  /* --pages: pages the kernel moved (migration, compaction, a
				   * huge page's collapse) or reclaimed: they left the counts */
};

#endif
