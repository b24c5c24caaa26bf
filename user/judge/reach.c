#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reach.h"

#define PAGE_SHIFT 12
#define READ_BYTES (1u << 20) /* read at once: a root's piece, or blocks */
#define READ_IOVS  1024	      /* blocks read at once */

/* A page some block lies on: the first and the last of them (by address). */
struct reach_page {
	__u64 page; /* its number + 1; 0: an empty slot */
	__u32 first, last;
};

/* A block's end; one of size 0 still holds a pointer to its start. */
static __u64 end_of(const struct reach_block *b)
{
	return b->addr + (b->size ? b->size : 1);
}

static size_t page_slot(__u64 page, size_t mask)
{
	__u64 h = page * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & mask;
}

static struct reach_page *page_of(const struct reach *r, __u64 page)
{
	for (size_t i = page_slot(page, r->page_mask);; i = (i + 1) & r->page_mask) {
		struct reach_page *p = &r->pages[i];

		if (p->page == page + 1 || !p->page)
			return p;
	}
}

static int by_addr(const void *a, const void *b)
{
	const struct reach_block *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

int reach_init(struct reach *r, struct reach_block *b, size_t n, const struct reach_mem *mem)
{
	size_t entries = 0, slots = 16;

	memset(r, 0, sizeof(*r));
	qsort(b, n, sizeof(*b), by_addr);
	r->b = b;
	r->n = n;
	r->mem = mem;
	for (size_t i = 0; i < n; i++) {
		b[i].kind = REACH_LOST;
		entries += ((end_of(&b[i]) - 1) >> PAGE_SHIFT) - (b[i].addr >> PAGE_SHIFT) + 1;
	}
	while (slots < 2 * entries)
		slots *= 2;
	r->pages = calloc(slots, sizeof(*r->pages));
	r->buf = malloc(READ_BYTES);
	if (!r->pages || !r->buf) {
		reach_free(r);
		return -ENOMEM;
	}
	r->page_mask = slots - 1;
	for (size_t i = 0; i < n; i++) {
		__u64 last = (end_of(&b[i]) - 1) >> PAGE_SHIFT;

		for (__u64 pg = b[i].addr >> PAGE_SHIFT; pg <= last; pg++) {
			struct reach_page *p = page_of(r, pg);

			if (!p->page) {
				p->page = pg + 1;
				p->first = (__u32)i;
			}
			p->last = (__u32)i;
		}
	}
	if (n) {
		r->lo = b[0].addr;
		r->hi = end_of(&b[n - 1]);
	}
	return 0;
}

void reach_free(struct reach *r)
{
	free(r->pages);
	free(r->todo);
	free(r->buf);
	r->pages = NULL;
	r->todo = NULL;
	r->buf = NULL;
}

ssize_t reach_find(const struct reach *r, __u64 addr)
{
	const struct reach_page *p;
	size_t lo, hi;

	if (addr < r->lo || addr >= r->hi)
		return -1;
	p = page_of(r, addr >> PAGE_SHIFT);
	if (!p->page)
		return -1;
	/* The last block of the page's that starts at or before addr. */
	lo = p->first;
	hi = p->last;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;

		if (r->b[mid].addr <= addr)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (r->b[lo].addr > addr || addr >= end_of(&r->b[lo]))
		return -1;
	return (ssize_t)lo;
}

static void push(struct reach *r, size_t i)
{
	if (r->ntodo == r->todo_cap) {
		size_t cap = r->todo_cap ? 2 * r->todo_cap : 1024;
		size_t *t = realloc(r->todo, cap * sizeof(*t));

		if (!t)
			abort(); /* no room to go on: the scan's figures would be wrong */
		r->todo = t;
		r->todo_cap = cap;
	}
	r->todo[r->ntodo++] = i;
}

/*
 * The words w[0..n), read from a root (definite, clique < 0), a block
 * reached (definite: by start pointers only), or a block of the lost tree
 * led by block clique. As valgrind's leak check: a block's kind only rises
 * while roots are followed; a block reached again by a better chain is
 * scanned again, so that what it points to rises too.
 */
static void scan_words(struct reach *r, const __u64 *w, size_t n, bool definite, ssize_t clique)
{
	r->scanned_bytes += n * sizeof(*w);
	for (size_t k = 0; k < n; k++) {
		ssize_t j = reach_find(r, w[k]);
		struct reach_block *b;

		if (j < 0)
			continue;
		b = &r->b[j];
		if (clique >= 0) {
			if (b->kind == REACH_LOST && j != clique) {
				b->kind = REACH_INDIRECT;
				push(r, (size_t)j);
			}
			continue;
		}
		if (b->kind == REACH_REACHABLE)
			continue;
		if (definite && w[k] == b->addr) {
			b->kind = REACH_REACHABLE;
			push(r, (size_t)j);
		} else if (b->kind == REACH_LOST) {
			b->kind = REACH_POSSIBLE;
			push(r, (size_t)j);
		}
	}
}

void reach_words(struct reach *r, const __u64 *w, size_t n)
{
	scan_words(r, w, n, true, -1);
}

/* The aligned words of buf, which holds [from, from + len) of the process. */
static void scan_bytes(struct reach *r, __u64 from, const unsigned char *buf, size_t len,
		       bool definite, ssize_t clique)
{
	size_t skip = (size_t)(-from & 7);

	if (len <= skip)
		return;
	scan_words(r, (const __u64 *)(buf + skip), (len - skip) / 8, definite, clique);
}

/* The first block that ends after addr. */
static size_t first_after(const struct reach *r, __u64 addr)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (end_of(&r->b[mid]) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static ssize_t read_one(struct reach *r, __u64 addr, size_t len)
{
	struct iovec iov = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};

	return r->mem->read(r->mem->ctx, &iov, 1, r->buf);
}

void reach_range(struct reach *r, __u64 start, __u64 end)
{
	size_t j = first_after(r, start);

	while (start < end) {
		__u64 stop = end - start > READ_BYTES ? start + READ_BYTES : end;
		ssize_t got = read_one(r, start, (size_t)(stop - start));
		__u64 pos = start;

		if (got < (ssize_t)(stop - start)) { /* a page that cannot be read: skip it */
			__u64 bad = start + (got > 0 ? (__u64)got : 0);

			stop = ((bad >> PAGE_SHIFT) + 1) << PAGE_SHIFT;
			if (stop > end)
				stop = end;
			r->unread_bytes += stop - bad;
			if (bad == start) {
				start = stop;
				continue;
			}
			stop = bad;
		}
		/* The bytes between the blocks. */
		while (pos < stop) {
			__u64 upto = stop;

			if (j < r->n && r->b[j].addr < stop)
				upto = r->b[j].addr > pos ? r->b[j].addr : pos;
			scan_bytes(r, pos, r->buf + (pos - start), (size_t)(upto - pos), true, -1);
			if (upto == stop)
				break;
			pos = end_of(&r->b[j++]);
		}
		start = stop;
	}
}

/* One block's contents, in pieces of READ_BYTES (a large one). */
static void scan_block(struct reach *r, size_t i, ssize_t clique)
{
	const struct reach_block *b = &r->b[i];

	for (__u64 at = b->addr; at < b->addr + b->size;) {
		size_t len = b->addr + b->size - at > READ_BYTES ? READ_BYTES
								 : (size_t)(b->addr + b->size - at);
		ssize_t got = read_one(r, at, len);

		if (got < (ssize_t)len)
			r->unread_bytes += len - (got > 0 ? (size_t)got : 0);
		if (got > 0)
			scan_bytes(r, at, r->buf, (size_t)got, b->kind == REACH_REACHABLE, clique);
		if (got < (ssize_t)len)
			return;
		at += len;
	}
}

/* Scan the blocks on the stack until it is empty: many blocks at a read. */
static void drain(struct reach *r, ssize_t clique)
{
	struct iovec iov[READ_IOVS];
	size_t which[READ_IOVS];

	while (r->ntodo) {
		size_t n = 0, bytes = 0;
		ssize_t got;

		while (r->ntodo && n < READ_IOVS) {
			const struct reach_block *b = &r->b[r->todo[r->ntodo - 1]];

			if (b->size > READ_BYTES - bytes)
				break;
			which[n] = r->todo[--r->ntodo];
			iov[n].iov_base = (void *)(uintptr_t)b->addr;
			iov[n++].iov_len = b->size;
			bytes += b->size;
		}
		if (!n) { /* a block larger than a read */
			scan_block(r, r->todo[--r->ntodo], clique);
			continue;
		}
		got = r->mem->read(r->mem->ctx, iov, (int)n, r->buf);
		if (got == (ssize_t)bytes) {
			size_t off = 0;

			for (size_t k = 0; k < n; k++) {
				const struct reach_block *b = &r->b[which[k]];

				scan_bytes(r, b->addr, r->buf + off, b->size,
					   b->kind == REACH_REACHABLE, clique);
				off += b->size;
			}
			continue;
		}
		/* One of them could not be read: each on its own (the buffer's
		 * is reused, so the batch's reads are not kept). */
		for (size_t k = 0; k < n; k++)
			scan_block(r, which[k], clique);
	}
}

void reach_finish(struct reach *r)
{
	drain(r, -1);
	/* What is left: each block not reached yet leads the tree it reaches;
	 * a leader reached from a later one joins its tree. */
	for (size_t i = 0; i < r->n; i++) {
		if (r->b[i].kind != REACH_LOST)
			continue;
		push(r, i);
		drain(r, (ssize_t)i);
	}
}
