/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pages mode (--pages): the resident anonymous pages of the processes in
 * page_procs, each counted to the user stack that made it resident, until
 * it is freed. No allocator probe: the cost is per page, not per malloc.
 *
 * A page becomes a process's anonymous memory in the thread that touches it
 * (a fault, or the kernel filling user memory for it): a movable page is
 * allocated (mm_page_alloc), its stack walked from the thread's user
 * registers, and the page held in the thread's storage until it is known
 * whose it became:
 * - the process's count of anonymous pages goes up (rss_stat) in the same
 *   entry into the kernel, and the page is not the page cache's: counted;
 * - a copy-on-write fault counts nothing up (an anonymous page replaces
 *   another): such a page is settled at the thread's next fault or page,
 *   counted if it is anonymous by then (its mapping says so).
 * A free (mm_page_free, in any context) releases it; a process's own exit
 * leaves its pages for the loader, which reports them as what the process
 * held at its end. A page the kernel moves (migration, compaction, a huge
 * page's collapse) or reclaims (swap) is freed from its old frame and not
 * followed to its new one: such frees are counted (pages_moved).
 *
 * Included by memleak.bpf.c: it shares the live blocks, the stacks and the
 * walk in the thread's call_state.
 */
#ifndef PAGES_BPF_H
#define PAGES_BPF_H

#define RSS_ANON	  1	/* MM_ANONPAGES */
#define MAPPING_KIND	  3ul /* the low bits of page->mapping: */
#define MAPPING_ANON	  1ul /* an anonymous page (2: movable_ops, 3: KSM) */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCS);
	__type(key, __u32);
	__type(value, __u8);
} page_procs SEC(".maps");

/*
 * A bit for each page counted, so that a free of any other page on the
 * machine (nearly all of them) is told apart without a search of the block
 * table: struct pages, by their address / 64 (their size) modulo PAGE_BITS,
 * which no two pages share on a machine of up to 32 GiB (beyond, a shared
 * bit costs a search).
 */
#define PAGE_BITS (1u << 23)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PAGE_BITS / 64);
	__type(key, __u32);
	__type(value, __u64);
} page_bits SEC(".maps");

static __always_inline __u64 *page_bit(__u64 page, __u64 *bit)
{
	__u32 i = (page >> 6) & (PAGE_BITS - 1), word = i >> 6;

	*bit = 1ull << (i & 63);
	return bpf_map_lookup_elem(&page_bits, &word);
}

static __always_inline struct pt_regs *user_regs(struct task_struct *task)
{
	return (struct pt_regs *)bpf_task_pt_regs(task);
}

/* Whether the user registers are still those of the entry into the kernel
 * that took the pending page. */
static __always_inline bool same_entry(const struct pending_page *p, struct pt_regs *regs)
{
	return regs->ip == p->ip && regs->sp == p->sp && regs->orig_ax == p->entry;
}

/*
 * Count the thread's pending page if it is its process's anonymous memory
 * now; fresh: a page with no mapping yet counts too (its count went up in
 * the same entry, before the page was mapped).
 */
static __always_inline void settle_page(struct call_state *st, bool fresh)
{
	struct pending_page p = st->pending;
	struct page *page = (struct page *)p.page;
	__u64 mapping, *word, bit;

	if (!page)
		return;
	st->pending.page = 0;
	mapping = (__u64)BPF_CORE_READ(page, mapping);
	if ((mapping & MAPPING_KIND) != MAPPING_ANON && (!fresh || mapping))
		return;
	if ((word = page_bit(p.page, &bit)))
		__sync_fetch_and_or(word, bit);
	record_at(PAGE_SPACE, current_tgid(), p.page, page_size << (p.order & 31),
		  p.stack ? p.stack : PAGES_NO_STACK, p.time_ns, &st->hint);
}

SEC("tp_btf/mm_page_alloc")
int BPF_PROG(page_taken, struct page *page, unsigned int order, gfp_t gfp, int migratetype)
{
	struct task_struct *task;
	struct call_state *st;
	struct pt_regs *regs;
	__u32 tgid;

	if (!page || !(gfp & GFP_MOVABLE))
		return 0;
	tgid = current_tgid();
	if (!bpf_map_lookup_elem(&page_procs, &tgid))
		return 0;
	task = bpf_get_current_task_btf();
	if (!(st = call_state()))
		return 0;
	settle_page(st, false);
	regs = user_regs(task);
	st->pending.time_ns = bpf_ktime_get_ns();
	/* memset, or malloc writing its own headers, touches it for its caller. */
	st->walk.trim = 1;
	st->pending.stack = user_stack(ctx, regs, &st->walk, 0, st->pending.time_ns);
	st->pending.order = order;
	st->pending.ip = regs->ip;
	st->pending.sp = regs->sp;
	st->pending.entry = regs->orig_ax;
	st->pending.page = page_addr(page);
	return 0;
}

SEC("tp_btf/rss_stat")
int BPF_PROG(page_counted, struct mm_struct *mm, int member)
{
	struct task_struct *task;
	struct call_state *st;

	if (member != RSS_ANON)
		return 0;
	task = bpf_get_current_task_btf();
	st = bpf_task_storage_get(&calls, task, 0, 0);
	if (!st || !st->pending.page)
		return 0;
	/* Another process's memory (a remote access), or a count of another
	 * entry into the kernel (a munmap after a page-cache read): settled
	 * at the next fault. */
	if (mm != task->mm || !same_entry(&st->pending, user_regs(task)))
		return 0;
	settle_page(st, true);
	return 0;
}

/* A fault settles what the thread's last one left pending (a copy-on-write
 * page). */
static __always_inline void settle_at_fault(void)
{
	struct call_state *st = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0, 0);

	if (st && st->pending.page)
		settle_page(st, false);
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(page_fault_user, unsigned long address, struct pt_regs *regs, unsigned long error)
{
	settle_at_fault();
	return 0;
}

SEC("tp_btf/page_fault_kernel")
int BPF_PROG(page_fault_kernel, unsigned long address, struct pt_regs *regs, unsigned long error)
{
	settle_at_fault();
	return 0;
}

/* Threads in the kernel's migration or reclaim now (a kernel thread always
 * is: kswapd, kcompactd, khugepaged): a page they free has moved, or gone to
 * swap, and was not freed by its process. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} moving SEC(".maps");

static __always_inline void moving_now(bool on)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u8 one = 1;

	if (on)
		bpf_map_update_elem(&moving, &tid, &one, BPF_ANY);
	else
		bpf_map_delete_elem(&moving, &tid);
}

SEC("tp_btf/mm_migrate_pages_start")
int BPF_PROG(migration_started)
{
	moving_now(true);
	return 0;
}

SEC("tp_btf/mm_migrate_pages")
int BPF_PROG(migration_ended)
{
	moving_now(false);
	return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_begin")
int BPF_PROG(reclaim_started)
{
	moving_now(true);
	return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_end")
int BPF_PROG(reclaim_ended)
{
	moving_now(false);
	return 0;
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(memcg_reclaim_started)
{
	moving_now(true);
	return 0;
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(memcg_reclaim_ended)
{
	moving_now(false);
	return 0;
}

SEC("tp_btf/mm_page_free")
int BPF_PROG(page_freed, struct page *page, unsigned int order)
{
	struct alloc_key key = {.space = PAGE_SPACE, .addr = page_addr(page)};
	struct task_struct *task;
	struct block_slot *s;
	__u64 *word, bit;
	__u32 home, state;

	word = page_bit(key.addr, &bit);
	if (!word || !(*word & bit))
		return 0;
	__sync_fetch_and_and(word, ~bit);
	home = block_home(&key, blocks_mask);
	if (!(s = find_block(&key, home, &state, NULL)))
		return 0;
	task = bpf_get_current_task_btf();
	if (s->info.size != page_size << (order & 31))
		__sync_fetch_and_add(&drops.pages_split, 1);
	/* Its process's end: kept for the loader's last report of it. */
	if ((task->flags & PF_EXITING_FLAG) && s->info.owner == task->tgid)
		return 0;
	if ((task->flags & PF_KTHREAD_FLAG) ||
	    bpf_map_lookup_elem(&moving, &(__u32){(__u32)bpf_get_current_pid_tgid()}))
		__sync_fetch_and_add(&drops.pages_moved, 1);
	release_at(&key, home, s->info.time_ns);
	return 0;
}

#endif
