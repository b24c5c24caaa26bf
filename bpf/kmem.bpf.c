// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel allocations (-k) on the mm tracepoints.
 *
 * Slab objects, pages and per-CPU areas are keyed by address, so a free in
 * any context finds the block, and counted to the process that asked for
 * them: the current one, or the kernel itself (KERNEL_OWNER) in interrupts
 * and kernel threads. Pages that become slabs or large kmalloc blocks are
 * counted through their objects only. Memory the kernel reclaims under
 * pressure is left out, as the page cache is left out of a process's
 * anonymous RSS: movable pages (user memory, page cache), reclaimable pages
 * and objects of reclaimable caches (dentries, inodes, page-cache nodes).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "heap.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Per-CPU scratch space, one slot per context that can nest on a CPU (task,
 * softirq, hardirq, NMI): a kernel allocation traced in an interrupt must not
 * write over the buffers of the program it interrupted. A program takes the
 * slot of its nesting depth (scratch_enter) and gives it back on its way out.
 */
#define SCRATCH_SLOTS 4

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct stack_frames);
} stack_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} nesting SEC(".maps");

/* The slot of this program's context; SCRATCH_SLOTS or more: none is free. */
static __always_inline __u32 scratch_enter(void)
{
	__u32 zero = 0, *depth = bpf_map_lookup_elem(&nesting, &zero);

	return depth ? __sync_fetch_and_add(depth, 1) : SCRATCH_SLOTS;
}

static __always_inline void scratch_exit(void)
{
	__u32 zero = 0, *depth = bpf_map_lookup_elem(&nesting, &zero);

	if (depth)
		__sync_fetch_and_add(depth, -1);
}

#define SLAB_RECLAIMABLE (1u << 15)  /* SLAB_RECLAIM_ACCOUNT */
#define THREAD_SIZE	 16384u	     /* x86_64's task stack, without KASAN */
#define PAGE_TYPE_SHIFT	 24
/* enum pagetype's values where the running kernel's BTF does not say them */
#define PAGE_TYPE_SLAB	 0xf5u /* PGTY_slab (6.12 on) */
#define PAGE_TYPE_KLARGE 0xf8u /* PGTY_large_kmalloc */

const volatile __u64 page_size = 4096;
const volatile __u32 ncpus = 1;		  /* a per-CPU area takes this many copies */
const volatile bool every_process = true; /* false: only the tgids in `owners` */

/* The processes traced, when not every process is. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCS);
	__type(key, __u32);
	__type(value, __u8);
} owners SEC(".maps");

/* Where each CPU's program runs now, read back as a plain number; one slot
 * per nesting context (see above). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} frame_addr SEC(".maps");

/* The page each CPU's context allocated last, until a slab event in the same
 * context tells what it became. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} last_page SEC(".maps");

/*
 * Interrupts and softirqs run on the CPU's own stacks, not the task's: an
 * allocation made off the interrupted task's stack is not that task's. The
 * tracepoint's arguments (ctx) sit on the stack it fires on; the program's
 * own frame may be a private one. (The preempt count would tell too, but
 * this kernel's kallsyms does not list per-CPU variables.)
 */
static __always_inline bool on_task_stack(void *ctx, __u32 slot, struct task_struct *task)
{
	__u64 *addr = bpf_map_lookup_elem(&frame_addr, &slot);
	__u64 stack = (__u64)task->stack;

	if (!addr)
		return true;
	*addr = (__u64)ctx;
	return *addr - stack < THREAD_SIZE;
}

/* Who this allocation is for; -1 when it is not traced. */
static __always_inline long owner_now(void *ctx, __u32 slot)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid;

	if ((task->flags & PF_KTHREAD_FLAG) || !on_task_stack(ctx, slot, task))
		return KERNEL_OWNER;
	tgid = task->tgid;
	if (tgid == self_tgid)
		return -1;
	if (!every_process && !bpf_map_lookup_elem(&owners, &tgid))
		return -1;
	return tgid;
}

/* The page allocated just before a slab object became a slab (or a large
 * kmalloc block): its bytes are the object's now. */
static __always_inline __u32 page_type_value(bool large)
{
	if (large)
		return bpf_core_enum_value_exists(enum pagetype, PGTY_large_kmalloc)
			   ? bpf_core_enum_value(enum pagetype, PGTY_large_kmalloc)
			   : PAGE_TYPE_KLARGE;
	return bpf_core_enum_value_exists(enum pagetype, PGTY_slab)
		   ? bpf_core_enum_value(enum pagetype, PGTY_slab)
		   : PAGE_TYPE_SLAB;
}

static __always_inline void settle_last_page(__u32 slot)
{
	__u64 *last = bpf_map_lookup_elem(&last_page, &slot);
	struct page *page;
	__u32 type;

	if (!last || !*last)
		return;
	page = (struct page *)*last;
	*last = 0;
	type = BPF_CORE_READ(page, page_type) >> PAGE_TYPE_SHIFT;
	if (type == page_type_value(false) || type == page_type_value(true))
		release(KSPACE_PAGE, (__u64)page);
}

/* The kernel stack of the current context, stored (0 if it could not be). */
static __always_inline __u64 kernel_stack(void *ctx, __u32 slot)
{
	struct stack_frames *buf = bpf_map_lookup_elem(&stack_scratch, &slot);

	if (!buf) {
		__sync_fetch_and_add(&drops.stacks, 1);
		return 0;
	}
	buf->how = 0;
	return store_stack(buf, bpf_get_stack(ctx, buf->ips, sizeof(buf->ips), 0), bpf_ktime_get_ns());
}

/* The kernel stack of an allocation of size bytes, if one is to be recorded. */
static __always_inline __u64 kstack(void *ctx, __u32 slot, __u64 size)
{
	return stack_wanted(size) ? kernel_stack(ctx, slot) : 0;
}

static __always_inline void object_alloc(void *ctx, const void *ptr, __u64 bytes, bool reclaimable)
{
	__u32 slot = scratch_enter();
	long owner;

	if (slot < SCRATCH_SLOTS) {
		settle_last_page(slot);
		if (ptr && !reclaimable && (owner = owner_now(ctx, slot)) >= 0)
			record(KSPACE_SLAB, (__u32)owner, (__u64)ptr, bytes,
			       kstack(ctx, slot, bytes));
	}
	scratch_exit();
}

SEC("tp_btf/kmalloc")
int BPF_PROG(kmalloc, unsigned long call_site, const void *ptr, size_t bytes_req,
	     size_t bytes_alloc, gfp_t gfp, int node)
{
	object_alloc(ctx, ptr, bytes_alloc, gfp & GFP_RECLAIMABLE);
	return 0;
}

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(kmem_cache_alloc, unsigned long call_site, const void *ptr, struct kmem_cache *s,
	     gfp_t gfp, int node)
{
	object_alloc(ctx, ptr, s->size, s->flags & SLAB_RECLAIMABLE);
	return 0;
}

SEC("tp_btf/kfree")
int BPF_PROG(kfree, unsigned long call_site, const void *ptr)
{
	if (ptr)
		release(KSPACE_SLAB, (__u64)ptr);
	return 0;
}

SEC("tp_btf/kmem_cache_free")
int BPF_PROG(kmem_cache_free, unsigned long call_site, const void *ptr, struct kmem_cache *s)
{
	if (ptr)
		release(KSPACE_SLAB, (__u64)ptr);
	return 0;
}

SEC("tp_btf/mm_page_alloc")
int BPF_PROG(mm_page_alloc, struct page *page, unsigned int order, gfp_t gfp, int migratetype)
{
	__u32 slot = scratch_enter();
	__u64 *last;
	long owner;

	if (slot < SCRATCH_SLOTS && page && !(gfp & (GFP_MOVABLE | GFP_RECLAIMABLE)) &&
	    (owner = owner_now(ctx, slot)) >= 0) {
		record(KSPACE_PAGE, (__u32)owner, page_addr(page), page_size << order,
		       kstack(ctx, slot, page_size << order));
		last = bpf_map_lookup_elem(&last_page, &slot);
		if (last)
			*last = (__u64)page;
	}
	scratch_exit();
	return 0;
}

SEC("tp_btf/mm_page_free")
int BPF_PROG(mm_page_free, struct page *page, unsigned int order)
{
	release(KSPACE_PAGE, page_addr(page));
	return 0;
}

SEC("tp_btf/mm_page_free_batched")
int BPF_PROG(mm_page_free_batched, struct page *page)
{
	release(KSPACE_PAGE, page_addr(page));
	return 0;
}

SEC("tp_btf/percpu_alloc_percpu")
int BPF_PROG(percpu_alloc_percpu, unsigned long call_site, bool reserved, bool is_atomic,
	     size_t size, size_t align, void *base_addr, int off, void *ptr, size_t bytes_alloc,
	     gfp_t gfp)
{
	__u32 slot = scratch_enter();
	long owner;

	if (slot < SCRATCH_SLOTS && ptr && (owner = owner_now(ctx, slot)) >= 0)
		record(KSPACE_PERCPU, (__u32)owner, (__u64)ptr, bytes_alloc * ncpus,
		       kstack(ctx, slot, bytes_alloc * ncpus));
	scratch_exit();
	return 0;
}

SEC("tp_btf/percpu_free_percpu")
int BPF_PROG(percpu_free_percpu, void *base_addr, int off, void *ptr)
{
	release(KSPACE_PERCPU, (__u64)ptr);
	return 0;
}
