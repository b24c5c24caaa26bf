/* Reading the BPF maps into a snapshot of per-process and per-stack figures. */
#ifndef COLLECT_H
#define COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#include "memleak.h"

/* The maps of one BPF object's accounting (heap.bpf.h): the user heap's or
 * the kernel's. procs < 0: that object is not loaded. */
struct heap_maps {
	int blocks;			     /* the live blocks' table, mapped for a walk only */
	size_t block_slots;		     /* its size */
	const __u64 *block_pages;	     /* live blocks per page of it (mapped), */
	size_t npages;			     /* its pages */
	int block_op;			     /* the program that finds or forgets one block, */
	const struct block_op *block_answer; /* and its answer */
	int procs, stack_counts, stacks;
	int proc_rows;	/* the live processes' totals, at their image's row */
	int stack_rows; /* the (process, stack) totals, named by stack_counts */
	int ended; /* totals of processes that ended, not yet retired; -1: none kept */
	const struct drops *drops;	      /* the object's live counters */
	const __u64 *nested_calls;	      /* calls inside a probed call (user heap only) */
	int copy_counts, copy_uses;	      /* programs that copy the tables out, */
	const struct counts_row *counts_rows; /* into these (mapped) */
	const struct stack_use_row *use_rows;
	size_t counts_cap, uses_cap; /* their rows */
	const __u32 *rows_copied;    /* how many the last copy wrote */
};

/* An object's accounting as its skeleton has it (heap.bpf.h). */
struct heap_objects {
	__u32 *blocks_mask, *stack_rows_mask; /* in the object's read-only data, before load */
	struct bpf_map *blocks, *block_pages, *procs, *proc_rows, *stack_counts, *stack_rows, *stacks;
	struct bpf_map *counts_copy, *uses_copy;
	struct bpf_map *ended; /* NULL for the kernel's */
	struct bpf_program *copy_counts, *copy_uses, *block_op;
	const struct block_op *block_answer;
	const struct drops *drops;
	const __u32 *rows_copied;
	const __u64 *nested_calls; /* NULL for the kernel's */
};

struct image;

struct stack_stat {
	__u32 tgid;
	__u64 stack_id;
	struct counts c;
	__u64 out_bytes; /* live allocations (older than the -o limit, if any) */
	__u64 out_allocs;
	__u64 oldest_ns;	 /* allocation time of the oldest live one; 0: none, or not known */
	struct alloc_key oldest; /* that block, where a walk of the live blocks found it */
};

/* Which image of a process a snapshot takes (a pid may hold two: one that
 * ended, not yet retired, and a newcomer's). */
enum image_view {
	VIEW_LIVE,  /* its live one; the one it ended with if no newcomer took the pid */
	VIEW_ENDED, /* the one it ended with; its live one if it did not end */
	VIEW_ANY,   /* either */
};

struct snapshot {
	struct drops drops;
	enum image_view view;
	struct image *images; /* each process's images, sorted by tgid */
	size_t nimages;
	struct stack_stat *stacks; /* sorted by tgid, then stack id */
	size_t nstacks;
};

/* The accounting of a skeleton (either object's: the names are the same). */
#define HEAP_OBJECTS(skel)                                                                         \
	((struct heap_objects){.blocks = (skel)->maps.blocks,                                      \
			       .block_pages = (skel)->maps.block_pages,                            \
			       .blocks_mask = (__u32 *)&(skel)->rodata->blocks_mask,               \
			       .procs = (skel)->maps.procs,                                        \
			       .proc_rows = (skel)->maps.proc_rows,                                \
			       .stack_counts = (skel)->maps.stack_counts,                          \
			       .stack_rows = (skel)->maps.stack_rows,                              \
			       .stack_rows_mask = (__u32 *)&(skel)->rodata->stack_rows_mask,       \
			       .stacks = (skel)->maps.stacks,                                      \
			       .counts_copy = (skel)->maps.counts_copy,                            \
			       .uses_copy = (skel)->maps.uses_copy,                                \
			       .copy_counts = (skel)->progs.copy_counts,                           \
			       .copy_uses = (skel)->progs.copy_uses,                               \
			       .block_op = (skel)->progs.block_op,                                 \
			       .block_answer = &(skel)->bss->block_answer,                         \
			       .drops = &(skel)->bss->drops,                                       \
			       .rows_copied = &(skel)->bss->rows_copied})

/* Before the object loads: room for max_allocs live blocks and max_stacks
 * stacks (and twice as many (process, stack) counts). */
int heap_maps_size(const struct heap_objects *o, __u32 max_allocs, __u32 max_stacks);
/* Once it is loaded: its maps, the copies mapped; -errno if they cannot be. */
int heap_maps_open(struct heap_maps *m, const struct heap_objects *o);
void heap_maps_close(struct heap_maps *m);

/* The stacks of the processes tgids[0..ntgids) (sorted), of the image view
 * says. Their figures are BPF's running counts: no walk of the live blocks
 * but with -o (older_than_ns). Returns -errno if the maps could not all be
 * read (the snapshot holds what was). */
int snapshot_read(const struct heap_maps *m, const __u32 *tgids, size_t ntgids, __u64 older_than_ns,
		  enum image_view view, struct snapshot *s);
void snapshot_free(struct snapshot *s);
/* A wanted process's totals, as read with its stacks' (so that they add up
 * with them); false if the snapshot has none of it. */
bool snapshot_counts(const struct snapshot *s, __u32 tgid, struct counts *c);
/* One process's stacks in a snapshot: the first, and how many (n). */
const struct stack_stat *snapshot_stacks_of(const struct snapshot *s, __u32 tgid, size_t *n);
/* The totals and name of one process (view: VIEW_LIVE or VIEW_ENDED); zeros
 * if it made no traced allocation. */
struct proc_counts snapshot_proc(const struct heap_maps *m, __u32 tgid, enum image_view view);
/* The oldest live block of each stack of want[0..n), by one walk of the
 * live blocks (their oldest_ns stays 0 if none is found). Sorts want. */
int snapshot_find_oldest(const struct heap_maps *m, const struct snapshot *s,
			 struct stack_stat **want, size_t n);
/* Whether the block at k, allocated at time_ns at that stack, still lives. */
bool snapshot_block_lives(const struct heap_maps *m, const struct alloc_key *k, __u64 stack_id,
			  __u64 time_ns);
/* Each live block of one address space (a process's: its tgid), in no
 * order. The process's own are those of its image (the program it runs):
 * an earlier program's went with its memory at exec. */
typedef void (*block_fn)(void *ctx, __u64 addr, __u64 size, __u64 stack_id);
int heap_blocks_of(const struct heap_maps *m, __u32 space, __u32 image, block_fn fn, void *ctx);
/* A forked child's copy of its parent's live blocks, as valgrind's child
 * has: each recorded as the child's, with its stack and time. How many, or
 * -errno. */
int heap_inherit(const struct heap_maps *m, __u32 parent, __u32 child);
/* Delete every map entry of processes, as they ended (ended) or live: their
 * totals, their stacks' totals and the live allocations they own, in one
 * walk of each map, leaving the other image under the same pid (a newcomer's,
 * or an ended one's); on the way, the oldest block of each stack of s (may
 * be NULL) whose oldest is not known. The stacks map is shared: see
 * snapshot_sweep_stacks. Sorts tgids. */
int snapshot_forget(const struct heap_maps *m, __u32 *tgids, size_t n, bool ended,
		    struct snapshot *s);
/* Delete the stacks that no counts and no live block refer to, and that no
 * allocation took while this ran: the stacks map stays bounded however
 * many processes come and go. */
int snapshot_sweep_stacks(const struct heap_maps *m, size_t *kept, size_t *reclaimed);
/* The frames of a stack, innermost first, and how they were walked
 * (UNWIND_*); returns their number. */
int snapshot_frames(const struct heap_maps *m, __u64 stack_id, __u64 *ips, __u32 *how);

#endif
