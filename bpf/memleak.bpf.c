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
#include "heap.bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u64 page_size = 4096;

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
		record(ctx, tgid, tgid, addr, st->size, BPF_F_USER_STACK);
	return 0;
}

/* Processes born and ended since the loader last drained the map. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCS);
	__type(key, __u32);
	__type(value, __u32);
} lifecycle SEC(".maps");

static __always_inline void note_life(__u32 tgid, __u32 event)
{
	__u32 *seen = bpf_map_lookup_elem(&lifecycle, &tgid);

	if (seen) {
		*seen |= event; /* one process's fork and exit never race */
		return;
	}
	if (bpf_map_update_elem(&lifecycle, &tgid, &event, BPF_NOEXIST))
		__sync_fetch_and_add(&drops.events, 1);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(process_forked, struct task_struct *parent, struct task_struct *child)
{
	if (child->pid == child->tgid) /* a process, not a thread */
		note_life(child->tgid, LIFE_BORN);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(process_exited, struct task_struct *p, bool group_dead)
{
	if (group_dead)
		note_life(p->tgid, LIFE_ENDED);
	return 0;
}

/* A traced process runs a new program: the old one's blocks are gone with it. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(image_changed, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid;
	struct proc_counts *proc = bpf_map_lookup_elem(&procs, &tgid);

	/* Its other threads are gone by now: nothing counts concurrently. */
	if (proc)
		*proc = (struct proc_counts){.image = proc->image + 1};
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
