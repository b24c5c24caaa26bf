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
#define ALLOCS_MAP_FLAGS 0 /* preallocated: see heap.bpf.h */
#include "heap.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define GFP_MOVABLE	 0x08u	     /* __GFP_MOVABLE */
#define GFP_RECLAIMABLE	 0x10u	     /* __GFP_RECLAIMABLE */
#define SLAB_RECLAIMABLE (1u << 15)  /* SLAB_RECLAIM_ACCOUNT */
#define PF_KTHREAD_FLAG	 0x00200000u /* PF_KTHREAD */
#define THREAD_SIZE	 16384u	     /* x86_64's task stack, without KASAN */
#define PAGE_TYPE_SHIFT	 24
#define PAGE_TYPE_SLAB	 0xf5u /* PGTY_slab */
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

/* Where each CPU's program runs now, read back as a plain number. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} frame_addr SEC(".maps");

/* The page each CPU allocated last, until a slab event tells what it became. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
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
static __always_inline bool on_task_stack(void *ctx, struct task_struct *task)
{
	__u32 zero = 0;
	__u64 *slot = bpf_map_lookup_elem(&frame_addr, &zero);
	__u64 stack = (__u64)task->stack;

	if (!slot)
		return true;
	*slot = (__u64)ctx;
	return *slot - stack < THREAD_SIZE;
}

/* Who this allocation is for; -1 when it is not traced. */
static __always_inline long owner_now(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid;

	if ((task->flags & PF_KTHREAD_FLAG) || !on_task_stack(ctx, task))
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
static __always_inline void settle_last_page(void)
{
	__u32 zero = 0;
	__u64 *last = bpf_map_lookup_elem(&last_page, &zero);
	struct page *page;
	__u32 type;

	if (!last || !*last)
		return;
	page = (struct page *)*last;
	*last = 0;
	type = BPF_CORE_READ(page, page_type) >> PAGE_TYPE_SHIFT;
	if (type == PAGE_TYPE_SLAB || type == PAGE_TYPE_KLARGE)
		release(KSPACE_PAGE, (__u64)page);
}

static __always_inline void object_alloc(void *ctx, const void *ptr, __u64 bytes, bool reclaimable)
{
	long owner;

	settle_last_page();
	if (!ptr || reclaimable || (owner = owner_now(ctx)) < 0)
		return;
	record(ctx, KSPACE_SLAB, (__u32)owner, (__u64)ptr, bytes, 0, 0);
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
	__u32 zero = 0;
	__u64 *last;
	long owner;

	if (!page || (gfp & (GFP_MOVABLE | GFP_RECLAIMABLE)) || (owner = owner_now(ctx)) < 0)
		return 0;
	record(ctx, KSPACE_PAGE, (__u32)owner, (__u64)page, page_size << order, 0, 0);
	last = bpf_map_lookup_elem(&last_page, &zero);
	if (last)
		*last = (__u64)page;
	return 0;
}

SEC("tp_btf/mm_page_free")
int BPF_PROG(mm_page_free, struct page *page, unsigned int order)
{
	release(KSPACE_PAGE, (__u64)page);
	return 0;
}

SEC("tp_btf/mm_page_free_batched")
int BPF_PROG(mm_page_free_batched, struct page *page)
{
	release(KSPACE_PAGE, (__u64)page);
	return 0;
}

SEC("tp_btf/percpu_alloc_percpu")
int BPF_PROG(percpu_alloc_percpu, unsigned long call_site, bool reserved, bool is_atomic,
	     size_t size, size_t align, void *base_addr, int off, void *ptr, size_t bytes_alloc,
	     gfp_t gfp)
{
	long owner;

	if (!ptr || (owner = owner_now(ctx)) < 0)
		return 0;
	record(ctx, KSPACE_PERCPU, (__u32)owner, (__u64)ptr, bytes_alloc * ncpus, 0, 0);
	return 0;
}

SEC("tp_btf/percpu_free_percpu")
int BPF_PROG(percpu_free_percpu, void *base_addr, int off, void *ptr)
{
	release(KSPACE_PERCPU, (__u64)ptr);
	return 0;
}
