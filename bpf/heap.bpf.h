/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The accounting both BPF objects share: live blocks keyed by (space,
 * address), totals per owning process and per (process, stack), and the
 * deduplicated stacks. The user heap object and the kernel object each get
 * their own copy of these maps.
 */
#ifndef HEAP_BPF_H
#define HEAP_BPF_H

#include "memleak.h"

const volatile __u64 min_size = 0;
const volatile __u64 max_size = ~0ULL;
const volatile __u32 sample_rate = 1; /* record a stack for 1 in N allocations */
const volatile __u32 self_tgid = 0;   /* never trace the tracer */

struct drops drops = {};

/* Program images are numbered across all processes, from 1: a process takes
 * a new one at its first allocation and at each exec, so that the blocks
 * and counts of an image it left, or of an earlier process under the same
 * pid, are never taken for its own. */
__u32 last_image = 0;

static __always_inline __u32 next_image(void)
{
	return __sync_fetch_and_add(&last_image, 1) + 1;
}

/* The live blocks (struct block_slot): the loader sizes the table and sets
 * its mask before load. */
const volatile __u32 blocks_mask = 2 * MAX_ALLOCS - 1;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2 * MAX_ALLOCS);
	__type(key, __u32);
	__type(value, struct block_slot);
} blocks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCS);
	__type(key, __u32);
	__type(value, struct proc_entry);
} procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PROC_ROWS);
	__type(key, __u32);
	__type(value, struct proc_row);
} proc_rows SEC(".maps");

/* The (process, stack) totals: rows of an array, each named by key in a
 * hash map (which takes memory as it fills, not all at load). The loader
 * sizes the rows, twice the keys, and sets their mask before load. */
const volatile __u32 stack_rows_mask = 2 * MAX_STACK_KEYS - 1;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * MAX_STACK_KEYS);
	__type(key, __u32);
	__type(value, struct counts_row);
} stack_rows SEC(".maps");

__u32 next_stack_row; /* where the next search for a free row starts */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_STACK_KEYS);
	__type(key, struct stack_key);
	__type(value, __u32); /* its row */
} stack_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_STACKS);
	__type(key, __u64);
	__type(value, struct stack_frames);
} stacks SEC(".maps");

/* Copies of stack_counts and of the stacks' use times, made by the
 * programs below when the loader runs them, read through a memory map. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2 * MAX_STACKS);
	__type(key, __u32);
	__type(value, struct counts_row);
} counts_copy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_STACKS);
	__type(key, __u32);
	__type(value, struct stack_use_row);
} uses_copy SEC(".maps");

__u32 rows_copied; /* by the last copy */

static __always_inline struct counts_row *stack_row_at(__u32 i)
{
	i &= stack_rows_mask;
	return bpf_map_lookup_elem(&stack_rows, &i);
}

static long copy_counts_row(struct bpf_map *map, struct stack_key *key, __u32 *i, __u32 *n)
{
	struct counts_row *row = bpf_map_lookup_elem(&counts_copy, n), *from = stack_row_at(*i);

	if (!row)
		return 1; /* full: stop */
	if (!from || !from->v.gen)
		return 0; /* being made */
	row->key = *key;
	row->v = from->v;
	++*n;
	return 0;
}

SEC("syscall")
int copy_counts(void *ctx)
{
	__u32 n = 0;

	bpf_for_each_map_elem(&stack_counts, copy_counts_row, &n, 0);
	rows_copied = n;
	return 0;
}

static long copy_use_row(struct bpf_map *map, __u64 *id, struct stack_frames *f, __u32 *n)
{
	struct stack_use_row *row = bpf_map_lookup_elem(&uses_copy, n);

	if (!row)
		return 1;
	row->stack_id = *id;
	row->used_ns = f->used_ns;
	++*n;
	return 0;
}

SEC("syscall")
int copy_uses(void *ctx)
{
	__u32 n = 0;

	bpf_for_each_map_elem(&stacks, copy_use_row, &n, 0);
	rows_copied = n;
	return 0;
}

#define GFP_MOVABLE	0x08u	    /* __GFP_MOVABLE */
#define GFP_RECLAIMABLE 0x10u	    /* __GFP_RECLAIMABLE */
#define PF_EXITING_FLAG 0x04u	    /* PF_EXITING */
#define PF_KTHREAD_FLAG 0x00200000u /* PF_KTHREAD */

/* A page's address as a number, as the block table hashes it (the verifier
 * allows no arithmetic on a trusted pointer). */
static __always_inline __u64 page_addr(struct page *page)
{
	__u64 a = 0;

	bpf_probe_read_kernel(&a, sizeof(a), &page);
	return a;
}

static __always_inline __u32 current_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

/* The totals of image, if it still has its row. */
static __always_inline struct proc_row *row_of(__u32 image)
{
	__u32 i = proc_row_of(image);
	struct proc_row *r = bpf_map_lookup_elem(&proc_rows, &i);

	return r && r->image == image && image ? r : NULL;
}

/* A new image with a free row, its totals zero; 0 if none was found free. */
static __always_inline __u32 claim_row(void)
{
	for (int i = 0; i < 4; i++) {
		__u32 image = next_image(), k = proc_row_of(image);
		struct proc_row *r = bpf_map_lookup_elem(&proc_rows, &k);

		if (!image || !r || __sync_val_compare_and_swap(&r->image, 0, image) != 0)
			continue;
		r->c = (struct counts){};
		return image;
	}
	return 0;
}

/* Free the row of image (the image is over: an exec, an exit). */
static __always_inline void release_row(__u32 image)
{
	struct proc_row *r = row_of(image);

	if (r)
		__sync_val_compare_and_swap(&r->image, image, 0);
}

/* The totals of the owner's current image, its entry made on its first
 * allocation (named then, when the owner is the current process). */
static __always_inline struct proc_row *proc_of(__u32 owner)
{
	struct proc_entry *p = bpf_map_lookup_elem(&procs, &owner), fresh = {};

	if (p)
		return row_of(p->image);
	if (owner == current_tgid())
		bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
	if (!(fresh.image = claim_row()))
		return NULL;
	if (bpf_map_update_elem(&procs, &owner, &fresh, BPF_NOEXIST)) {
		release_row(fresh.image); /* another thread made it first */
		p = bpf_map_lookup_elem(&procs, &owner);
		return p ? row_of(p->image) : NULL;
	}
	return row_of(fresh.image);
}

/* A free row taken for key, its counts zero; NULL if none was found free. */
static __always_inline struct counts_row *claim_stack_row(const struct stack_key *key, __u32 *i)
{
	for (int k = 0; k < 8; k++) {
		__u32 at = __sync_fetch_and_add(&next_stack_row, 1) & stack_rows_mask;
		struct counts_row *r = stack_row_at(at);

		if (!r || __sync_val_compare_and_swap(&r->v.gen, 0, bpf_get_prandom_u32() | 1) != 0)
			continue;
		r->key = *key;
		r->v.c = (struct counts){};
		r->v.live = r->v.oldest_ns = 0;
		*i = at;
		return r;
	}
	return NULL;
}

/* The row of key's totals (its index in *i), made on its first use. */
static __always_inline struct counts_row *stack_counts_of(const struct stack_key *key, __u32 *i)
{
	__u32 *found = bpf_map_lookup_elem(&stack_counts, key);
	struct counts_row *r;

	if (!found) {
		if (!(r = claim_stack_row(key, i)))
			return NULL;
		if (bpf_map_update_elem(&stack_counts, key, i, BPF_NOEXIST) == 0)
			return r;
		r->v.gen = 0; /* another thread made it first */
		if (!(found = bpf_map_lookup_elem(&stack_counts, key)))
			return NULL;
	}
	*i = *found & stack_rows_mask;
	r = stack_row_at(*i);
	return r && r->v.gen ? r : NULL;
}

/* What a thread found last in record_at, to find again without a hash
 * lookup: its process's image, and the row of the stack it last used. The
 * rows tell whether each is still current. */
struct record_hint {
	__u32 image;
	__u32 row;
	__u32 gen;
	__u32 pad;
};

/* The row of key's totals if the hint names it. */
static __always_inline struct counts_row *hinted_row(const struct record_hint *h,
						      const struct stack_key *key)
{
	struct counts_row *r = stack_row_at(h->row);

	if (r && h->gen && r->v.gen == h->gen && r->key.stack_id == key->stack_id &&
	    r->key.tgid == key->tgid && r->key.image == key->image)
		return r;
	return NULL;
}

/* Whether the next allocation, of size bytes, is recorded with its stack. */
static __always_inline bool stack_wanted(__u64 size)
{
	if (size < min_size || size > max_size)
		return false;
	return sample_rate <= 1 || bpf_get_prandom_u32() % sample_rate == 0;
}

/* Deduplicate the first len bytes of buf's frames into the stacks map; 0 if
 * it could not be stored. Each use is stamped with now: the loader reclaims stacks
 * that nothing references and nothing used since it began looking. */
static __always_inline __u64 store_stack(struct stack_frames *buf, long len, __u64 now)
{
	__u64 hash = 0xcbf29ce484222325ULL;
	struct stack_frames *found;
	int i;

	if (len <= 0)
		goto dropped;
	for (i = 0; i < MAX_FRAMES; i++) {
		if (i * 8 >= len)
			break;
		hash = (hash ^ buf->ips[i]) * 0x100000001b3ULL;
		hash ^= hash >> 29;
	}
	hash |= 1;
	found = bpf_map_lookup_elem(&stacks, &hash);
	if (found) {
		found->used_ns = now;
		return hash;
	}
	buf->used_ns = now;
	if (bpf_map_update_elem(&stacks, &hash, buf, BPF_NOEXIST) == 0)
		return hash;
	if (bpf_map_lookup_elem(&stacks, &hash)) /* another CPU just added it */
		return hash;
	__sync_fetch_and_add(&drops.stacks_map_failed, 1);
dropped:
	__sync_fetch_and_add(&drops.stacks, 1);
	return 0;
}

/* A block of an image its process has left by exec was dropped from its
 * counts then, and is not counted again. */
static __always_inline void count_free(const struct alloc_info *info)
{
	struct proc_row *p = row_of(info->image);
	struct stack_counts *c;
	struct counts_row *r;

	if (!p)
		return;
	__sync_fetch_and_add(&p->c.frees, 1);
	__sync_fetch_and_add(&p->c.free_bytes, info->size);
	if (!info->stack_id || !(r = stack_row_at(info->row)) || r->v.gen != info->gen)
		return;
	c = &r->v;
	__sync_fetch_and_add(&c->c.frees, 1);
	__sync_fetch_and_add(&c->c.free_bytes, info->size);
	__sync_fetch_and_sub(&c->live, 1);
	/* The oldest goes: the next oldest is not known (an allocation that
	 * finds none live meanwhile sets its own time, which stays). */
	__sync_val_compare_and_swap(&c->oldest_ns, info->time_ns, 0);
}

/* How many live blocks each page of the table holds (BLOCK_PAGE_SLOTS
 * slots): the loader's walks read only the pages that hold some. (Mapped,
 * an array's values lie 8 bytes apart.) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2 * MAX_ALLOCS / BLOCK_PAGE_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} block_pages SEC(".maps");

static __always_inline void count_on_page(__u32 slot, __s64 n)
{
	__u32 page = slot / BLOCK_PAGE_SLOTS;
	__u64 *live = bpf_map_lookup_elem(&block_pages, &page);

	if (live)
		__sync_fetch_and_add(live, n);
}

static __always_inline struct block_slot *block_at(__u32 home, __u32 d)
{
	__u32 i = (home + d) & blocks_mask;

	return bpf_map_lookup_elem(&blocks, &i);
}

/* The slot of the live block at key (whose home slot is home), and its
 * state then (and its index, if at is given); NULL if none. */
static __always_inline struct block_slot *find_block(const struct alloc_key *key, __u32 home,
						     __u32 *state, __u32 *at)
{
	struct block_slot *s = block_at(home, 0);
	__u32 reach;

	if (!s)
		return NULL;
	reach = s->reach;
	for (__u32 d = 0; d < BLOCK_PROBES; d++) {
		if (!(reach & (1u << d)) || !(s = block_at(home, d)))
			continue;
		*state = s->state;
		asm volatile("" ::: "memory"); /* the state before the key */
		if ((*state & 3) == BLOCK_LIVE && s->key.addr == key->addr &&
		    s->key.space == key->space) {
			if (at)
				*at = (home + d) & blocks_mask;
			return s;
		}
	}
	return NULL;
}

/* When the live block at addr was allocated; 0 if none is known. */
static __always_inline __u64 alloc_time(__u32 space, __u64 addr)
{
	struct alloc_key key = {.space = space, .addr = addr};
	struct block_slot *s;
	__u32 state;

	s = find_block(&key, block_home(&key, blocks_mask), &state, NULL);
	return s ? s->info.time_ns : 0;
}

/* Take the live block at key out of the table if it was allocated at
 * time_ns (any, if 0): 0 and its record, or -1 if it is not there. */
static __always_inline int take_block(const struct alloc_key *key, __u32 home, __u64 time_ns,
				      struct alloc_info *info)
{
	struct block_slot *s;
	__u32 state, at;

	s = find_block(key, home, &state, &at);
	if (!s || (time_ns && s->info.time_ns != time_ns))
		return -1;
	*info = s->info;
	/* Still the state the key and record were read in: they are its. */
	if (__sync_val_compare_and_swap(&s->state, state, block_next(state, BLOCK_BUSY)) != state)
		return -1; /* another thread freed it first */
	__sync_lock_test_and_set(&s->state, block_next(block_next(state, BLOCK_BUSY), BLOCK_FREE));
	count_on_page(at, -1);
	return 0;
}

/* Put a block in the first free slot from its home on; -1 if none is free. */
static __always_inline int put_block(const struct alloc_key *key, __u32 home,
				     const struct alloc_info *info)
{
	struct block_slot *h = block_at(home, 0), *s;
	__u32 state;

	if (!h)
		return -1;
	for (__u32 d = 0; d < BLOCK_PROBES; d++) {
		if (!(s = block_at(home, d)))
			return -1;
		state = s->state;
		if ((state & 3) != BLOCK_FREE ||
		    __sync_val_compare_and_swap(&s->state, state, block_next(state, BLOCK_BUSY)) !=
			state)
			continue;
		s->key = *key;
		s->info = *info;
		if (!(h->reach & (1u << d)))
			__sync_fetch_and_or(&h->reach, 1u << d);
		__sync_lock_test_and_set(&s->state,
					 block_next(block_next(state, BLOCK_BUSY), BLOCK_LIVE));
		count_on_page((home + d) & blocks_mask, 1);
		return 0;
	}
	return -1;
}

/* Forget the live block at key (home: its home slot) if it was allocated at
 * time_ns (any, if 0); one we never saw allocated is ignored. */
static __always_inline void release_at(const struct alloc_key *key, __u32 home, __u64 time_ns)
{
	struct alloc_info info;

	if (take_block(key, home, time_ns, &info) == 0)
		count_free(&info);
}

static __always_inline void release_same(__u32 space, __u64 addr, __u64 time_ns)
{
	struct alloc_key key = {.space = space, .addr = addr};

	release_at(&key, block_home(&key, blocks_mask), time_ns);
}

static __always_inline void release(__u32 space, __u64 addr)
{
	release_same(space, addr, 0);
}

/* Count a new live block in its stack's entry: the first live one is the oldest. */
static __always_inline void count_in_stack(struct stack_counts *c, const struct alloc_info *info)
{
	__sync_fetch_and_add(&c->c.allocs, 1);
	__sync_fetch_and_add(&c->c.alloc_bytes, info->size);
	if (__sync_fetch_and_add(&c->live, 1) == 0)
		c->oldest_ns = info->time_ns;
}

/* A new live block of `owner`, allocated at the stored stack stack_id (0:
 * none was recorded) at time now. hint: what the calling thread found last,
 * updated (NULL: none kept). */
static __always_inline void record_at(__u32 space, __u32 owner, __u64 addr, __u64 size,
				      __u64 stack_id, __u64 now, struct record_hint *hint)
{
	struct alloc_key key = {.space = space, .addr = addr};
	struct alloc_info info = {.size = size, .owner = owner, .stack_id = stack_id};
	struct stack_counts *c = NULL;
	struct proc_row *p;
	__u32 home;

	if (size < min_size || size > max_size)
		return;
	home = block_home(&key, blocks_mask);
	p = hint && hint->image ? row_of(hint->image) : NULL;
	if (!p && (p = proc_of(owner)) && hint)
		hint->image = p->image;
	if (!p) {
		__sync_fetch_and_add(&drops.procs_map_full, 1);
		return;
	}
	info.image = p->image;
	info.time_ns = now;
	if (stack_id) {
		struct stack_key sk = {.tgid = owner, .image = info.image, .stack_id = stack_id};
		struct counts_row *r = hint ? hinted_row(hint, &sk) : NULL;

		if (r) {
			info.row = hint->row;
		} else if ((r = stack_counts_of(&sk, &info.row)) && hint) {
			hint->row = info.row;
			hint->gen = r->v.gen;
		}
		if (r) {
			c = &r->v;
			info.gen = c->gen;
		} else {
			info.stack_id = 0;
			__sync_fetch_and_add(&drops.stacks, 1);
			__sync_fetch_and_add(&drops.stack_counts_full, 1);
		}
	}
	/* The address is live already: its free was never seen. */
	release_at(&key, home, 0);
	if (put_block(&key, home, &info)) {
		__sync_fetch_and_add(&drops.allocs_map_full, 1);
		return;
	}
	__sync_fetch_and_add(&p->c.allocs, 1);
	__sync_fetch_and_add(&p->c.alloc_bytes, size);
	if (c)
		count_in_stack(c, &info);
}

/* The loader asks of one block with a test run, op as context; the answer
 * is left in block_answer (the verifier lets no write through a pointer
 * into the context that the compiler may make). */
struct block_op block_answer;

SEC("syscall")
int block_op(struct block_op *ctx)
{
	struct block_op *op = &block_answer;
	struct block_slot *s;
	__u32 state, home;

	*op = *ctx;
	op->done = 0;
	home = block_home(&op->key, blocks_mask);
	if (op->op == BLOCK_OP_FORGET) {
		op->done = take_block(&op->key, home, op->info.time_ns, &op->info) == 0;
	} else if (op->op == BLOCK_OP_INHERIT) {
		record_at(op->key.space, op->info.owner, op->key.addr, op->info.size,
			  op->info.stack_id, op->info.time_ns, NULL);
		op->done = 1;
	} else if ((s = find_block(&op->key, home, &state, NULL))) {
		op->info = s->info;
		asm volatile("" ::: "memory"); /* the record before the state again */
		op->done = s->state == state;
	}
	return 0;
}

static __always_inline void record(__u32 space, __u32 owner, __u64 addr, __u64 size, __u64 stack_id)
{
	record_at(space, owner, addr, size, stack_id, bpf_ktime_get_ns(), NULL);
}

#endif
