/*
 * Reachability: which live blocks a process can still reach, as valgrind's
 * leak check classes them. Roots (registers, stacks, writable memory outside
 * the blocks) are read through a memory source, then pointers are followed
 * through the blocks' contents:
 *
 *   reachable  a chain of pointers to blocks' starts leads to it from a root;
 *   possible   only chains with a pointer into some block's middle do;
 *   indirect   only lost blocks point to it;
 *   lost       nothing does: the first block of a lost tree or cycle.
 *
 * Any aligned word whose value falls in a block counts as a pointer
 * (conservative): a scan can call a lost block reachable, never the reverse.
 */
#ifndef REACH_H
#define REACH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/types.h>

enum reach_kind {
	REACH_LOST, /* while scanning: not reached (yet) */
	REACH_INDIRECT,
	REACH_POSSIBLE,
	REACH_REACHABLE,
	REACH_KINDS,
};

/* Blocks and their bytes, by kind. */
struct reach_counts {
	__u64 bytes[REACH_KINDS], allocs[REACH_KINDS];
};

/* One scan of a process. */
struct reach_summary {
	double time;	     /* when: seconds since the epoch */
	double pause_ms;     /* the process was held this long */
	__u64 scanned_bytes; /* roots and blocks read */
	__u64 unread_bytes;  /* could not be read (as if they held no pointer) */
	struct reach_counts total;
};

struct reach_block {
	__u64 addr, size;
	__u64 stack_id;
	enum reach_kind kind;
};

/* Where memory is read from: [addr, addr + len) of the process into buf;
 * returns the bytes read, which stop where it cannot be read (-1: none). */
struct reach_mem {
	ssize_t (*read)(void *ctx, __u64 addr, void *buf, size_t len);
	void *ctx;
};

struct reach {
	struct reach_block *b; /* sorted by address, disjoint */
	size_t n;
	__u64 lo, hi; /* the lowest block's start, the highest one's end */
	struct reach_page *pages; /* open addressing: page -> the blocks on it */
	size_t page_mask;
	size_t *todo; /* blocks to scan: a stack */
	size_t ntodo, todo_cap;
	const struct reach_mem *mem;
	struct reach_chunk *chunks; /* copies of the memory where blocks lie */
	size_t nchunks;
	unsigned char *arena; /* where the copies are */
	__u64 kept_bytes, keep_limit;
	unsigned char *buf;	  /* a root's piece */
	unsigned char *block_buf; /* a block's, where no copy is kept */
	__u64 scanned_bytes; /* words looked at, roots and blocks */
	__u64 unread_bytes;  /* blocks and roots that could not be read */
};

/* Takes b (sorted here) for the scan; -ENOMEM if there is no room. */
int reach_init(struct reach *r, struct reach_block *b, size_t n, const struct reach_mem *mem);
/* Root words (a thread's registers). */
void reach_words(struct reach *r, const __u64 *w, size_t n);
/* Root memory [start, end), but for the bytes inside blocks. */
void reach_range(struct reach *r, __u64 start, __u64 end);
/* The block holding addr (a pointer into it), or -1. */
ssize_t reach_find(const struct reach *r, __u64 addr);
/* Follow the roots through the blocks, then split what is not reached into
 * lost and indirect: each block's kind is final. */
void reach_finish(struct reach *r);
void reach_free(struct reach *r);

#endif
