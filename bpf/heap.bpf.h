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
const volatile __u32 sample_rate = 1;	  /* record a stack for 1 in N allocations */
const volatile __u32 self_tgid = 0;	  /* never trace the tracer */
const volatile bool track_images = false; /* an exec drops the old image's blocks */

struct drops drops = {};

/*
 * Maps that can grow large take memory as they fill, not all at load: the
 * block table too, unless the kernel's allocations are traced, where each
 * new entry's memory would be a traced allocation in turn (the loader then
 * preallocates the user heap's table as well).
 */
#ifndef ALLOCS_MAP_FLAGS
#define ALLOCS_MAP_FLAGS BPF_F_NO_PREALLOC
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, ALLOCS_MAP_FLAGS);
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

/* How many times each traced process has exec'd; absent: never. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCS);
	__type(key, __u32);
	__type(value, __u32);
} images SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
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

/* Deduplicate the current stack (user or kernel, by flags) into the stacks
 * map; 0 if it could not be recorded. */
static __always_inline __u64 record_stack(void *ctx, __u64 flags)
{
	__u32 zero = 0;
	struct stack_frames *buf = bpf_map_lookup_elem(&stack_scratch, &zero);
	__u64 hash = 0xcbf29ce484222325ULL;
	long len;
	int i;

	if (!buf)
		return 0;
	len = bpf_get_stack(ctx, buf->ips, sizeof(buf->ips), flags);
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

static __always_inline void count_free(const struct alloc_info *info)
{
	__u32 owner = info->owner;
	struct counts *c = bpf_map_lookup_elem(&procs, &owner);

	if (c) {
		__sync_fetch_and_add(&c->frees, 1);
		__sync_fetch_and_add(&c->free_bytes, info->size);
	}
	if (info->stack_id) {
		struct stack_key sk = {.tgid = owner, .stack_id = info->stack_id};

		c = bpf_map_lookup_elem(&stack_counts, &sk);
		if (c) {
			__sync_fetch_and_add(&c->frees, 1);
			__sync_fetch_and_add(&c->free_bytes, info->size);
		}
	}
}

static __always_inline __u32 image_of(__u32 owner)
{
	__u32 *image;

	if (!track_images)
		return 0;
	image = bpf_map_lookup_elem(&images, &owner);
	return image ? *image : 0;
}

/* Forget a live block; one we never saw allocated is ignored, and one of an
 * image the process has left by exec was dropped from its counts then. */
static __always_inline void release(__u32 space, __u64 addr)
{
	struct alloc_key key = {.space = space, .addr = addr};
	struct alloc_info *found, info;

	found = bpf_map_lookup_elem(&allocs, &key);
	if (!found)
		return; /* allocated before tracing began, or not tracked */
	info = *found;
	if (bpf_map_delete_elem(&allocs, &key))
		return; /* another thread freed it first */
	if (info.image == image_of(info.owner))
		count_free(&info);
}

/* A new live block of `owner`, with the stack that `stack_flags` selects. */
static __always_inline void record(void *ctx, __u32 space, __u32 owner, __u64 addr, __u64 size,
				   __u64 stack_flags)
{
	struct alloc_key key = {.space = space, .addr = addr};
	struct alloc_info info = {.size = size, .owner = owner, .image = image_of(owner)};
	struct counts *c;

	if (size < min_size || size > max_size)
		return;
	c = counts_of(&procs, &owner);
	if (!c) {
		__sync_fetch_and_add(&drops.procs_map_full, 1);
		return;
	}
	info.time_ns = bpf_ktime_get_ns();
	if (sample_rate <= 1 || bpf_get_prandom_u32() % sample_rate == 0)
		info.stack_id = record_stack(ctx, stack_flags);
	if (bpf_map_update_elem(&allocs, &key, &info, BPF_NOEXIST)) {
		/* The address is live already: its free was never seen. */
		release(space, addr);
		if (bpf_map_update_elem(&allocs, &key, &info, BPF_NOEXIST)) {
			__sync_fetch_and_add(&drops.allocs_map_full, 1);
			return;
		}
	}
	__sync_fetch_and_add(&c->allocs, 1);
	__sync_fetch_and_add(&c->alloc_bytes, size);
	if (info.stack_id) {
		struct stack_key sk = {.tgid = owner, .stack_id = info.stack_id};

		c = counts_of(&stack_counts, &sk);
		if (!c) {
			__sync_fetch_and_add(&drops.stacks, 1);
			return;
		}
		__sync_fetch_and_add(&c->allocs, 1);
		__sync_fetch_and_add(&c->alloc_bytes, size);
	}
}

#endif
