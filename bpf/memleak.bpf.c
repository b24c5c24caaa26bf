// SPDX-License-Identifier: GPL-2.0
/*
 * Heap accounting on the allocator's entry points.
 *
 * Entry probes remember the outermost allocator call of each thread (its
 * stack pointer tells nested calls apart: allocators call each other, and
 * operator new calls malloc). The single return probe then records the new
 * block with the caller's stack, and free-like probes release blocks.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "memleak.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u64 min_size = 0;
const volatile __u64 max_size = ~0ULL;
const volatile __u32 sample_rate = 1; /* record a stack for 1 in N allocations */
const volatile __u32 self_tgid = 0;   /* never trace the tracer */
const volatile __u64 page_size = 4096;

struct drops drops = {};

/* The thread's outermost allocator call in flight. */
struct call_state {
	__u64 sp; /* stack pointer at its entry; 0 when none is in flight */
	__u64 size;
	__u64 ptr;
	__u32 kind;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct call_state);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ALLOCS);
	__type(key, struct alloc_key);
	__type(value, struct alloc_info);
} allocs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCS);
	__type(key, __u32);
	__type(value, struct counts);
} procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_STACK_KEYS);
	__type(key, struct stack_key);
	__type(value, struct counts);
} stack_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_STACKS);
	__type(key, __u64);
	__type(value, struct stack_frames);
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_frames);
} stack_scratch SEC(".maps");

static __always_inline __u32 current_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

static __always_inline struct counts *counts_of(void *map, const void *key)
{
	static const struct counts zero;
	struct counts *c = bpf_map_lookup_elem(map, key);

	if (c)
		return c;
	bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

/* Deduplicate the caller's user stack into the stacks map; 0 if not recorded. */
static __always_inline __u64 record_stack(void *ctx)
{
	__u32 zero = 0;
	struct stack_frames *buf = bpf_map_lookup_elem(&stack_scratch, &zero);
	__u64 hash = 0xcbf29ce484222325ULL;
	long len;
	int i;

	if (!buf)
		return 0;
	len = bpf_get_stack(ctx, buf->ips, sizeof(buf->ips), BPF_F_USER_STACK);
	if (len <= 0)
		goto dropped;
	for (i = 0; i < MAX_FRAMES; i++) {
		if (i * 8 >= len)
			break;
		hash = (hash ^ buf->ips[i]) * 0x100000001b3ULL;
		hash ^= hash >> 29;
	}
	hash |= 1;
	if (bpf_map_lookup_elem(&stacks, &hash))
		return hash;
	if (bpf_map_update_elem(&stacks, &hash, buf, BPF_NOEXIST) == 0)
		return hash;
	if (bpf_map_lookup_elem(&stacks, &hash)) /* another CPU just added it */
		return hash;
dropped:
	__sync_fetch_and_add(&drops.stacks, 1);
	return 0;
}

static __always_inline void count_free(__u32 tgid, const struct alloc_info *info)
{
	struct counts *c = bpf_map_lookup_elem(&procs, &tgid);

	if (c) {
		__sync_fetch_and_add(&c->frees, 1);
		__sync_fetch_and_add(&c->free_bytes, info->size);
	}
	if (info->stack_id) {
		struct stack_key sk = {.tgid = tgid, .stack_id = info->stack_id};

		c = bpf_map_lookup_elem(&stack_counts, &sk);
		if (c) {
			__sync_fetch_and_add(&c->frees, 1);
			__sync_fetch_and_add(&c->free_bytes, info->size);
		}
	}
}

static __always_inline void release(__u32 tgid, __u64 addr)
{
	struct alloc_key key = {.tgid = tgid, .addr = addr};
	struct alloc_info *found, info;

	found = bpf_map_lookup_elem(&allocs, &key);
	if (!found)
		return; /* allocated before tracing began, or not tracked */
	info = *found;
	if (bpf_map_delete_elem(&allocs, &key))
		return; /* another thread freed it first */
	count_free(tgid, &info);
}

static __always_inline void record(void *ctx, __u32 tgid, __u64 addr, __u64 size)
{
	struct alloc_key key = {.tgid = tgid, .addr = addr};
	struct alloc_info info = {.size = size};
	struct counts *c;

	if (size < min_size || size > max_size)
		return;
	c = counts_of(&procs, &tgid);
	if (!c) {
		__sync_fetch_and_add(&drops.procs_map_full, 1);
		return;
	}
	info.time_ns = bpf_ktime_get_ns();
	if (sample_rate <= 1 || bpf_get_prandom_u32() % sample_rate == 0)
		info.stack_id = record_stack(ctx);
	if (bpf_map_update_elem(&allocs, &key, &info, BPF_NOEXIST)) {
		/* The address is live already: its free was never seen. */
		release(tgid, addr);
		if (bpf_map_update_elem(&allocs, &key, &info, BPF_NOEXIST)) {
			__sync_fetch_and_add(&drops.allocs_map_full, 1);
			return;
		}
	}
	__sync_fetch_and_add(&c->allocs, 1);
	__sync_fetch_and_add(&c->alloc_bytes, size);
	if (info.stack_id) {
		struct stack_key sk = {.tgid = tgid, .stack_id = info.stack_id};

		c = counts_of(&stack_counts, &sk);
		if (!c) {
			__sync_fetch_and_add(&drops.stacks, 1);
			return;
		}
		__sync_fetch_and_add(&c->allocs, 1);
		__sync_fetch_and_add(&c->alloc_bytes, size);
	}
}

/* Remember an allocator call unless it runs inside another one. */
static __always_inline int enter(struct pt_regs *ctx, __u32 kind, __u64 size, __u64 ptr)
{
	struct call_state *st;
	__u64 sp = PT_REGS_SP(ctx);

	if (current_tgid() == self_tgid)
		return 0;
	st = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0,
				  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		__sync_fetch_and_add(&drops.events, 1);
		return 0;
	}
	/* A call deeper on the stack than the one in flight is nested in it.
	 * One at the same depth or above replaces it: a tail call, or an
	 * earlier call whose return was never seen. */
	if (st->sp && sp < st->sp)
		return 0;
	st->sp = sp;
	st->size = size;
	st->ptr = ptr;
	st->kind = kind;
	return 0;
}

static __always_inline __u64 array_size(__u64 n, __u64 size)
{
	__u64 bytes = n * size;

	/* The barrier keeps clang from turning the check into a 128-bit multiply. */
	asm volatile("" : "+r"(bytes));
	if (n && bytes / n != size)
		return ~0ULL; /* the call fails with ENOMEM */
	return bytes;
}

SEC("uprobe")
int BPF_KPROBE(malloc_enter, __u64 size)
{
	return enter(ctx, CALL_ALLOC, size, 0);
}

SEC("uprobe")
int BPF_KPROBE(pvalloc_enter, __u64 size)
{
	return enter(ctx, CALL_ALLOC, (size + page_size - 1) & ~(page_size - 1), 0);
}

SEC("uprobe")
int BPF_KPROBE(calloc_enter, __u64 n, __u64 size)
{
	return enter(ctx, CALL_ALLOC, array_size(n, size), 0);
}

SEC("uprobe")
int BPF_KPROBE(memalign_enter, __u64 align, __u64 size)
{
	return enter(ctx, CALL_ALLOC, size, 0);
}

SEC("uprobe")
int BPF_KPROBE(realloc_enter, __u64 ptr, __u64 size)
{
	return enter(ctx, CALL_REALLOC, size, ptr);
}

SEC("uprobe")
int BPF_KPROBE(reallocarray_enter, __u64 ptr, __u64 n, __u64 size)
{
	return enter(ctx, CALL_REALLOC, array_size(n, size), ptr);
}

SEC("uprobe")
int BPF_KPROBE(posix_memalign_enter, __u64 memptr, __u64 align, __u64 size)
{
	return enter(ctx, CALL_POSIX_MEMALIGN, size, memptr);
}

SEC("uretprobe")
int BPF_KRETPROBE(alloc_return, __u64 ret)
{
	struct call_state *st;
	__u32 tgid = current_tgid();
	__u64 addr = ret;

	if (tgid == self_tgid)
		return 0;
	st = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0, 0);
	/* Only the outermost call returns above the stack pointer it entered with. */
	if (!st || !st->sp || PT_REGS_SP(ctx) <= st->sp)
		return 0;
	st->sp = 0;

	switch (st->kind) {
	case CALL_REALLOC:
		/* Success moves the block; realloc(p, 0) may free it and return NULL. */
		if (st->ptr && (addr || st->size == 0))
			release(tgid, st->ptr);
		break;
	case CALL_POSIX_MEMALIGN:
		addr = 0;
		if (ret == 0)
			bpf_probe_read_user(&addr, sizeof(addr), (void *)st->ptr);
		break;
	}
	if (addr)
		record(ctx, tgid, addr, st->size);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(free_enter, __u64 ptr)
{
	__u32 tgid = current_tgid();

	if (ptr && tgid != self_tgid)
		release(tgid, ptr);
	return 0;
}
