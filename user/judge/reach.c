#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "reach.h"

#define PAGE_SHIFT 12
#define READ_BYTES  (1u << 20) /* a root's piece read at once */
#define CHUNK_SHIFT 16
#define CHUNK_BYTES (1ULL << CHUNK_SHIFT) /* the memory holding blocks, kept in pieces */
#define CHUNK_SLOTS (1u << 16)
#define KEEP_LIMIT  (256ULL << 20) /* of the process's memory copied at once, at most */

/* A page some block lies on: the first and the last of them (by address). */
struct reach_page {
	__u64 page; /* its number + 1; 0: an empty slot */
	__u32 first, last;
};

/* A copy of CHUNK_BYTES of the process, where blocks lie. */
struct reach_chunk {
	__u64 key; /* its address / CHUNK_BYTES + 1; 0: an empty slot */
	__u32 len; /* the bytes that could be read */
	unsigned char *data;
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

/* Sort by address: a radix sort, 16 bits a pass, a pass left out where
 * every block has the same digit (a user address's top 16 bits). */
static int sort_by_addr(struct reach_block *b, size_t n)
{
	struct reach_block *tmp = malloc((n ? n : 1) * sizeof(*tmp)), *from = b, *to = tmp;
	size_t *count = malloc(65536 * sizeof(*count));

	if (!tmp || !count) {
		free(tmp);
		free(count);
		return -ENOMEM;
	}
	for (int shift = 0; shift < 64; shift += 16) {
		size_t sum = 0;
		bool one = false;

		memset(count, 0, 65536 * sizeof(*count));
		for (size_t i = 0; i < n; i++)
			count[(from[i].addr >> shift) & 0xffff]++;
		for (size_t d = 0; d < 65536; d++) {
			size_t c = count[d];

			one |= c == n;
			count[d] = sum;
			sum += c;
		}
		if (one)
			continue;
		for (size_t i = 0; i < n; i++)
			to[count[(from[i].addr >> shift) & 0xffff]++] = from[i];
		to = from;
		from = from == b ? tmp : b;
	}
	if (from != b)
		memcpy(b, from, n * sizeof(*b));
	free(tmp);
	free(count);
	return 0;
}

int reach_init(struct reach *r, struct reach_block *b, size_t n, const struct reach_mem *mem)
{
	size_t entries = 0, slots = 16;

	memset(r, 0, sizeof(*r));
	if (sort_by_addr(b, n))
		return -ENOMEM;
	r->b = b;
	r->n = n;
	r->mem = mem;
	for (size_t i = 0; i < n; i++) { /* the pages blocks lie on, each once */
		__u64 first = b[i].addr >> PAGE_SHIFT, last = (end_of(&b[i]) - 1) >> PAGE_SHIFT;

		if (i && first == (end_of(&b[i - 1]) - 1) >> PAGE_SHIFT)
			first++;
		b[i].kind = REACH_LOST;
		entries += last >= first ? last - first + 1 : 0;
	}
	while (slots < 2 * entries)
		slots *= 2;
	r->pages = calloc(slots, sizeof(*r->pages));
	r->chunks = calloc(CHUNK_SLOTS, sizeof(*r->chunks));
	r->buf = malloc(READ_BYTES);
	r->block_buf = malloc(CHUNK_BYTES);
	/* The copies in huge pages where the kernel gives them: a fault per
	 * 2 MiB, not per 4 KiB. */
	r->arena = mmap(NULL, KEEP_LIMIT, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->arena == MAP_FAILED)
		r->arena = NULL;
	else
		madvise(r->arena, KEEP_LIMIT, MADV_HUGEPAGE);
	r->keep_limit = r->arena ? KEEP_LIMIT : 0;
	if (!r->pages || !r->chunks || !r->buf || !r->block_buf) {
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
	if (r->arena)
		munmap(r->arena, KEEP_LIMIT);
	r->arena = NULL;
	free(r->chunks);
	r->chunks = NULL;
	free(r->pages);
	free(r->todo);
	free(r->buf);
	free(r->block_buf);
	r->block_buf = NULL;
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

static const unsigned char *chunk_bytes(struct reach *r, __u64 at, size_t len,
					unsigned char *buf);

/*
 * An interior pointer that valgrind's leak check (its default heuristics)
 * takes for a start pointer, as the shapes it knows keep one on purpose:
 *   length64: 8 bytes in, past a header that holds the size after it (a
 *             length-prefixed allocator's, as SQLite's);
 *   stdstring: 24 bytes in, past a length, a capacity and a count (the
 *             copy-on-write std::string's representation).
 */
static bool known_interior(struct reach *r, const struct reach_block *b, __u64 ptr)
{
	unsigned char buf[24];
	const unsigned char *bytes;
	__u64 head[3];

	if (ptr == b->addr + 8 && b->size >= 8) {
		if (!(bytes = chunk_bytes(r, b->addr, 8, buf)))
			return false;
		memcpy(head, bytes, 8);
		return head[0] == b->size - 8;
	}
	if (ptr == b->addr + 24 && b->size >= 25 && (b->addr & ~(CHUNK_BYTES - 1)) ==
							((b->addr + 23) & ~(CHUNK_BYTES - 1))) {
		if (!(bytes = chunk_bytes(r, b->addr, 24, buf)))
			return false;
		memcpy(head, bytes, 24);
		return head[0] <= head[1] && head[1] == b->size - 24 - 1;
	}
	return false;
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
		if (definite && (w[k] == b->addr || known_interior(r, b, w[k]))) {
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

static ssize_t read_mem(struct reach *r, __u64 addr, void *buf, size_t len)
{
	return r->mem->read(r->mem->ctx, addr, buf, len);
}

static struct reach_chunk *chunk_slot(const struct reach *r, __u64 base)
{
	__u64 key = (base >> CHUNK_SHIFT) + 1;

	for (size_t i = page_slot(key, CHUNK_SLOTS - 1);; i = (i + 1) & (CHUNK_SLOTS - 1)) {
		struct reach_chunk *c = &r->chunks[i];

		if (c->key == key || !c->key)
			return c;
	}
}

/* Room for a copy of the chunk at base (none read yet), if there is room. */
static struct reach_chunk *chunk_new(struct reach *r, __u64 base)
{
	struct reach_chunk *c = chunk_slot(r, base);

	if (c->key || r->nchunks >= CHUNK_SLOTS / 2 || r->kept_bytes + CHUNK_BYTES > r->keep_limit)
		return NULL;
	c->data = r->arena + r->kept_bytes;
	c->key = (base >> CHUNK_SHIFT) + 1;
	c->len = 0;
	r->nchunks++;
	r->kept_bytes += CHUNK_BYTES;
	return c;
}

/* Whether some block lies in [start, end). */
static bool holds_blocks(const struct reach *r, __u64 start, __u64 end)
{
	size_t j = first_after(r, start);

	return j < r->n && r->b[j].addr < end;
}

void reach_range(struct reach *r, __u64 start, __u64 end)
{
	size_t j = first_after(r, start);

	while (start < end) {
		__u64 stop = end - start > READ_BYTES ? start + READ_BYTES : end;
		ssize_t got = read_mem(r, start, r->buf, (size_t)(stop - start));
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
		/* The whole chunks read that hold blocks: kept, for their scan. */
		for (__u64 at = (start + CHUNK_BYTES - 1) & ~(CHUNK_BYTES - 1);
		     at + CHUNK_BYTES <= stop; at += CHUNK_BYTES) {
			struct reach_chunk *c;

			if (holds_blocks(r, at, at + CHUNK_BYTES) && (c = chunk_new(r, at))) {
				memcpy(c->data, r->buf + (at - start), CHUNK_BYTES);
				c->len = CHUNK_BYTES;
			}
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

/* [at, at + len) of the process, within one chunk: from its copy, read
 * now if there is room for one, or else read into buf. NULL if it cannot
 * be read. */
static const unsigned char *chunk_bytes(struct reach *r, __u64 at, size_t len,
					unsigned char *buf)
{
	__u64 base = at & ~(CHUNK_BYTES - 1);
	struct reach_chunk *c = chunk_slot(r, base);

	if (!c->key && (c = chunk_new(r, base))) {
		ssize_t got = read_mem(r, base, c->data, CHUNK_BYTES);

		c->len = got > 0 ? (__u32)got : 0;
	}
	/* A copy that stops short (the chunk's start or end is not mapped):
	 * what it lacks is read on its own. */
	if (c && c->key && at + len <= base + c->len)
		return c->data + (at - base);
	return read_mem(r, at, buf, len) == (ssize_t)len ? buf : NULL;
}

/* One block's contents, a chunk at a time. */
static void scan_block(struct reach *r, size_t i, ssize_t clique)
{
	const struct reach_block *b = &r->b[i];

	for (__u64 at = b->addr; at < b->addr + b->size;) {
		__u64 next = (at & ~(CHUNK_BYTES - 1)) + CHUNK_BYTES;
		size_t len = (size_t)((next < b->addr + b->size ? next : b->addr + b->size) - at);
		const unsigned char *bytes = chunk_bytes(r, at, len, r->block_buf);

		if (bytes)
			scan_bytes(r, at, bytes, len, b->kind == REACH_REACHABLE, clique);
		else
			r->unread_bytes += len;
		at += len;
	}
}

static void drain(struct reach *r, ssize_t clique)
{
	while (r->ntodo)
		scan_block(r, r->todo[--r->ntodo], clique);
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
