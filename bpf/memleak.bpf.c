// SPDX-License-Identifier: GPL-2.0
/*
 * Heap accounting on the allocator's entry points.
 *
 * Entry probes remember the outermost allocator call of each thread
 * (allocators call each other, and operator new calls malloc). Its return
 * probe then records the new block with the caller's stack, and free-like
 * probes release blocks.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "heap.bpf.h"
#include "unwind.bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u64 page_size = 4096;

/*
 * Nothing here trusts the stack's contents to tell whether a call is still
 * in flight: state left behind by a call whose return was never seen (its
 * probes removed meanwhile, a longjmp, a throw, an exec) must be replaced,
 * never obeyed. A call is nested in another only if it is called from that
 * one's code (each probe's attach cookie gives its function's extent), and a
 * return is the call's own only if it comes back to the very stack pointer
 * and return address the call was entered with.
 */
struct frame_id {
	__u64 sp;  /* stack pointer at entry; 0: none */
	__u64 ret; /* the return address stored there */
};

struct code_span {
	__u64 lo, hi;
};

/* The operator new (libstdc++'s, calling malloc) entered last: the outermost
 * of a nest (nothrow new calls new) gives the caller, its return address
 * read when an allocator call is made from the innermost's code. */
struct new_wrapper {
	__u64 outer_sp;	  /* the outermost's stack pointer at entry */
	__u64 inner_sp;	  /* the innermost's */
	struct code_span inner;
};

/* How far below a wrapper's entry its allocator call may be: its frame. */
#define WRAPPER_FRAME 2048
/* Words read at once from an allocator call's stack pointer up, which hold
 * its return address and, nearly always, the outermost wrapper's. */
#define WRAPPER_WORDS 32

/* An allocator call in flight: the outermost one of a nest (allocators call
 * each other, and operator new calls malloc). */
struct call {
	struct frame_id at;
	struct code_span code; /* the called function's */
	__u64 caller;	       /* the frame that called the wrapper around the call; 0: none */
	__u64 size;
	__u64 ptr;
	__u64 old_time; /* realloc: the moved block's allocation time, its identity */
	__u32 kind;
	__u32 pad;
};

/* A signal handler may allocate while the call it interrupted is in flight,
 * and one of its own may interrupt it in turn: the thread's calls in flight
 * are a stack, the handlers' above the calls they interrupted. */
#define MAX_CALLS 4

/* --pages: the movable page this thread took last, until it is known
 * whose it became (pages.bpf.h). */
struct pending_page {
	__u64 page; /* its struct page; 0: none */
	__u64 stack;
	__u64 time_ns;
	__u64 ip, sp, entry; /* the user registers then: one entry into the kernel */
	__u32 order;
	__u32 pad;
};

struct call_state {
	struct call calls[MAX_CALLS];
	__u32 depth; /* calls[0, depth) are in flight, the newest last */
	__u32 pad;
	struct record_hint hint;
	struct new_wrapper wrapper;
	struct pending_page pending; /* --pages */
	struct walk walk; /* the stack of the block, once returned */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct call_state);
} calls SEC(".maps");

/* Entries ignored because a call already in flight encloses them: real
 * nesting only (reallocarray calling realloc, jemalloc's new[] jumping to
 * its new). */
__u64 nested_calls = 0;

/* The call's return address, read only when something turns on it: a read
 * of user memory costs as much as the rest of the entry. */
static __always_inline void read_ret(struct frame_id *f)
{
	if (!f->ret)
		bpf_probe_read_user(&f->ret, sizeof(f->ret), (void *)f->sp);
}

/* The probed function's code: from its entry, its size long. The probe may
 * sit a few instructions in (the loader's probe_site): the attach cookie
 * holds how far in (high half) and the size (low half). */
static __always_inline struct code_span code_at(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx), lo = PT_REGS_IP(ctx) - (cookie >> 32);

	return (struct code_span){.lo = lo, .hi = lo + (__u32)cookie};
}

static __always_inline bool in_span(const struct code_span *c, __u64 addr)
{
	return addr >= c->lo && addr < c->hi;
}

/* Where a return probe sends a function back to: the kernel's trampoline,
 * at the start of the process's uprobe area. A return probe puts it in the
 * return address's slot once the entry programs have run. */
static __always_inline __u64 uretprobe_trampoline(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return BPF_CORE_READ(task, mm, uprobes_state.xol_area, vaddr);
}

/* The stack of an allocation of size bytes, from caller on (if given), if
 * one is to be recorded. */
static __always_inline __u64 stack_of(struct pt_regs *ctx, struct call_state *st, __u64 size,
				      __u64 caller, __u64 now)
{
	if (!stack_wanted(size))
		return 0;
	/* Fixed for the process's life (the thread's storage goes at exec): read once. */
	if (!st->walk.trampoline)
		st->walk.trampoline = uretprobe_trampoline();
	return user_stack(ctx, ctx, &st->walk, caller, now);
}

/*
 * The address space a block lives in, which its free comes from: the
 * process's own, or for a process made by clone(CLONE_VM) without
 * CLONE_THREAD (a vfork child, posix_spawn's, a runtime's), the memory of
 * the parent it shares: the nearest ancestor with another memory map ends
 * the climb (a few steps; a parent gone reparents it, and its own is used).
 * A global function: the verifier checks its loads of task pointers (each
 * a search of the kernel's BTF) once, not on every path to it.
 */
__noinline __u32 heap_space(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct mm_struct *mm = task->mm;
	__u32 space = current_tgid();

	/* Direct loads of BTF pointers: no helper call on the hot path. */
	for (int i = 0; i < 4; i++) {
		task = task->real_parent;
		if (!task || task->mm != mm)
			break;
		space = task->tgid;
	}
	return space;
}

static __always_inline struct call_state *call_state(void)
{
	struct call_state *st = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!st)
		__sync_fetch_and_add(&drops.events, 1);
	return st;
}

/* Pages mode: the same tables, fed by the kernel's page events. */
#include "pages.bpf.h"

/* Called from the code of the newest call in flight, or jumped to from it as
 * a tail call (the same stack pointer, its return already taken by its probe). */
static __always_inline bool nested(const struct call *top, const struct frame_id *f)
{
	return in_span(&top->code, f->ret) ||
	       (f->sp == top->at.sp && f->ret == uretprobe_trampoline());
}

/* Whether a call entered at sp may come from the code of the operator new
 * entered last: only then does its return address tell. */
static __always_inline bool near_wrapper(const struct new_wrapper *w, __u64 sp)
{
	return sp < w->inner_sp && w->inner_sp - sp <= WRAPPER_FRAME;
}

/* For a call entered at f that may come from an operator new's code: the
 * outermost wrapper's caller if it does, else 0. f's return address is read
 * too, with it in one read when they are near. */
static __always_inline __u64 wrapper_caller(struct call_state *st, struct frame_id *f)
{
	__u64 d = st->wrapper.outer_sp - f->sp, caller = 0, uses;
	struct stack_window *win;

	if (d < WRAPPER_WORDS * 8 && !(d & 7) &&
	    (win = read_window(f->sp, WRAPPER_WORDS * 8, &uses))) {
		__u64 i = d >> 3, ret;

		asm volatile("%0 &= %1" : "+r"(i) : "i"(WRAPPER_WORDS - 1)); /* for the verifier */
		ret = win->words[0];
		caller = win->words[i];
		if (window_kept(win, uses)) {
			f->ret = ret;
			return in_span(&st->wrapper.inner, ret) ? caller : 0;
		}
		caller = 0;
	}
	read_ret(f);
	if (in_span(&st->wrapper.inner, f->ret))
		bpf_probe_read_user(&caller, sizeof(caller), (void *)st->wrapper.outer_sp);
	return in_span(&st->wrapper.inner, f->ret) ? caller : 0;
}

/*
 * realloc's lookups of the block it was given, as global functions: the
 * verifier checks each once, apart from the states of the loops of the
 * programs that call them. Inlined, each realloc entry took 0.1 s to
 * verify and alloc_end 30 ms more, paid at every launch.
 */
__noinline __u64 realloc_old_time(__u64 ptr)
{
	return alloc_time(heap_space(), ptr);
}

__noinline int realloc_release(__u32 space, __u64 ptr, __u64 time_ns)
{
	release_same(space, ptr, time_ns);
	return 0;
}

/* Remember an allocator call unless it runs inside another one. The return
 * address is read only if a call is in flight or an operator new may have
 * made this one: the return probe matches a call by its stack pointer, and
 * by its return address when that was read. */
static __always_inline int call_enter(struct pt_regs *ctx, __u32 kind, __u64 size, __u64 ptr)
{
	struct frame_id f = {.sp = PT_REGS_SP(ctx)};
	struct call_state *st;
	struct call *c;
	__u32 depth;

	if (current_tgid() == self_tgid || !(st = call_state()))
		return 0;
	depth = st->depth;
	if (depth > MAX_CALLS)
		depth = MAX_CALLS;
	if (depth) {
		read_ret(&f);
		if (nested(&st->calls[(depth - 1) & (MAX_CALLS - 1)], &f)) {
			__sync_fetch_and_add(&nested_calls, 1);
			return 0;
		}
	}
	/* A call whose frame is not below this one's (the stack grows down) is
	 * over, its return never seen (a longjmp or throw out of it, a handler
	 * that did not return). */
	for (int i = 0; i < MAX_CALLS; i++)
		if (depth && st->calls[(depth - 1) & (MAX_CALLS - 1)].at.sp <= f.sp)
			depth--;
	if (depth == MAX_CALLS) {
		st->depth = depth;
		__sync_fetch_and_add(&drops.calls_too_deep, 1);
		return 0;
	}
	c = &st->calls[depth & (MAX_CALLS - 1)];
	st->depth = depth + 1;
	c->caller = near_wrapper(&st->wrapper, f.sp) ? wrapper_caller(st, &f) : 0;
	c->at = f;
	c->code = code_at(ctx);
	c->size = size;
	c->ptr = ptr;
	c->kind = kind;
	c->old_time = kind == CALL_REALLOC ? realloc_old_time(ptr) : 0;
	return 0;
}

/* The call in flight entered at stack pointer sp with return address ret
 * (if its entry read it): its index, or -1. Calls newer than it never return: they are dropped
 * with it once it is taken (set_depth). */
static __always_inline int find_call(const struct call_state *st, __u64 sp, __u64 ret)
{
	__u32 depth = st->depth;

	for (int i = MAX_CALLS - 1; i >= 0; i--)
		if ((__u32)i < depth && st->calls[i].at.sp == sp &&
		    (st->calls[i].at.ret == ret || !st->calls[i].at.ret))
			return i;
	return -1;
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
	return call_enter(ctx, CALL_ALLOC, size, 0);
}

SEC("uprobe")
int BPF_KPROBE(pvalloc_enter, __u64 size)
{
	return call_enter(ctx, CALL_ALLOC, (size + page_size - 1) & ~(page_size - 1), 0);
}

SEC("uprobe")
int BPF_KPROBE(calloc_enter, __u64 n, __u64 size)
{
	return call_enter(ctx, CALL_ALLOC, array_size(n, size), 0);
}

SEC("uprobe")
int BPF_KPROBE(memalign_enter, __u64 align, __u64 size)
{
	return call_enter(ctx, CALL_ALLOC, size, 0);
}

SEC("uprobe")
int BPF_KPROBE(realloc_enter, __u64 ptr, __u64 size)
{
	return call_enter(ctx, CALL_REALLOC, size, ptr);
}

SEC("uprobe")
int BPF_KPROBE(reallocarray_enter, __u64 ptr, __u64 n, __u64 size)
{
	return call_enter(ctx, CALL_REALLOC, array_size(n, size), ptr);
}

SEC("uprobe")
int BPF_KPROBE(posix_memalign_enter, __u64 memptr, __u64 align, __u64 size)
{
	return call_enter(ctx, CALL_POSIX_MEMALIGN, size, memptr);
}

/*
 * libstdc++'s operator new calls malloc (or aligned_alloc) and throws when
 * it fails: a return probe on it would put the kernel's trampoline, which
 * has no unwind information, between the throw and its catch, and the
 * program would end in std::terminate. It gets an entry probe only; the
 * block is counted at the allocator call inside it, with the caller of new
 * as the allocating frame: the allocator is called from inside the code of
 * the wrapper entered last, whose caller is the allocating frame, unless a
 * wrapper called it (nothrow new calls new) or jumped to it (new[] to new).
 * The attach cookie gives the wrapper's extent (code_at).
 */
SEC("uprobe")
int BPF_KPROBE(new_wrapper_enter)
{
	struct frame_id f = {.sp = PT_REGS_SP(ctx)};
	struct call_state *st;
	struct new_wrapper *w;

	if (current_tgid() == self_tgid || !(st = call_state()))
		return 0;
	w = &st->wrapper;
	/* Only a wrapper entered just below the last one may be called from
	 * its code: then its return address tells. */
	if (!near_wrapper(w, f.sp) || (read_ret(&f), !in_span(&w->inner, f.ret)))
		w->outer_sp = f.sp;
	w->inner = code_at(ctx);
	w->inner_sp = f.sp;
	return 0;
}

/*
 * Where an allocator call ends, one program for both ways (each program's
 * verification is paid at every launch): a return probe on the function
 * (cookie 0), or an entry probe on a ret instruction (cookie END_AT_RET).
 * An allocator's own operator new (jemalloc's) may throw, so it has no
 * return probe: the loader finds its ret instructions (and those of the
 * code it jumps to). There the stack pointer is back at the slot holding
 * the return address the call was entered with. Only the outermost call
 * comes back to the very place it was called from.
 */
SEC("uprobe")
int BPF_KPROBE(alloc_end)
{
	bool at_ret = bpf_get_attach_cookie(ctx) == END_AT_RET;
	__u64 sp = PT_REGS_SP(ctx), ret = 0, addr = PT_REGS_RC(ctx), caller;
	__u32 tgid = current_tgid(), space;
	struct call_state *st;
	struct call *c;
	int i;

	if (tgid == self_tgid)
		return 0;
	st = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0, 0);
	if (!st || !st->depth)
		return 0;
	if (!at_ret)
		sp -= 8, ret = PT_REGS_IP(ctx); /* back in the caller: the address popped */
	else if (bpf_probe_read_user(&ret, sizeof(ret), (void *)sp) ||
		 ret == uretprobe_trampoline()) /* a call with a return probe jumped here */
		return 0;
	if ((i = find_call(st, sp, ret)) < 0)
		return 0;
	c = &st->calls[i & (MAX_CALLS - 1)];
	caller = c->caller;
	if (at_ret) {
		/* The code may be shared with malloc's tail calls: only an
		 * allocation ends here (realloc and posix_memalign keep their
		 * return probes). The walk starts in the allocator: the first
		 * frame is its caller. */
		if (c->kind != CALL_ALLOC)
			return 0;
		if (!caller)
			caller = ret;
	}
	space = heap_space();
	switch (c->kind) {
	case CALL_REALLOC:
		/* Success moves the block; realloc(p, 0) may free it and return NULL.
		 * Released only if still the block realloc was given: once realloc
		 * freed it, another thread may have been handed the same address
		 * (and a block never seen allocated has nothing to release). */
		if (c->old_time && (addr || c->size == 0))
			realloc_release(space, c->ptr, c->old_time);
		break;
	case CALL_POSIX_MEMALIGN:
		if (addr == 0) /* it returns 0 on success, the block at *memptr */
			bpf_probe_read_user(&addr, sizeof(addr), (void *)c->ptr);
		else
			addr = 0;
		break;
	}
	if (addr) {
		__u64 now = bpf_ktime_get_ns();

		record_at(space, tgid, addr, c->size, stack_of(ctx, st, c->size, caller, now), now,
			  &st->hint);
	}
	st->depth = i;
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
		__sync_fetch_and_add(&drops.lifecycle_map_full, 1);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(process_forked, struct task_struct *parent, struct task_struct *child)
{
	if (child->pid == child->tgid) /* a process, not a thread */
		note_life(child->tgid, LIFE_BORN);
	return 0;
}

/* The totals of processes that ended, until the loader retires them: out of
 * the way of a new process that takes the pid before it looks. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDED);
	__type(key, __u32);
	__type(value, struct proc_counts);
} ended SEC(".maps");

SEC("tp_btf/sched_process_exit")
int BPF_PROG(process_exited, struct task_struct *p, bool group_dead)
{
	__u32 tgid = p->tgid;
	struct proc_entry *proc;

	if (!group_dead)
		return 0;
	bpf_map_delete_elem(&areas, &tgid);
	bpf_map_delete_elem(&page_procs, &tgid); /* its pid may be another's next */
	proc = bpf_map_lookup_elem(&procs, &tgid);
	if (proc) {
		struct proc_row *r = row_of(proc->image);
		struct proc_counts last = {.image = proc->image};

		if (r)
			last.c = r->c;
		__builtin_memcpy(last.comm, proc->comm, sizeof(last.comm));
		/* Kept where it is if there is no room (or the pid ended twice
		 * since the loader looked): a newcomer then shares its entry. */
		if (bpf_map_update_elem(&ended, &tgid, &last, BPF_NOEXIST) == 0) {
			bpf_map_delete_elem(&procs, &tgid);
			release_row(last.image);
		} else {
			__sync_fetch_and_add(&drops.lifecycle_map_full, 1);
		}
	}
	note_life(tgid, LIFE_ENDED);
	return 0;
}

/* A traced process runs a new program: the old one's blocks are gone with it. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(image_changed, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid;
	struct proc_entry *proc = bpf_map_lookup_elem(&procs, &tgid);

	/* Its other threads are gone by now: nothing counts concurrently. */
	if (proc) {
		release_row(proc->image);
		proc->image = claim_row();
		bpf_get_current_comm(proc->comm, sizeof(proc->comm));
		if (!proc->image) /* no free row: its next allocation tries again */
			bpf_map_delete_elem(&procs, &tgid);
		note_life(tgid, LIFE_EXEC); /* its new allocator is to be probed */
	}
	/* Its code areas are the new program's. */
	bpf_map_delete_elem(&areas, &tgid);
	/* Calls in flight in the old program never return. */
	bpf_task_storage_delete(&calls, bpf_get_current_task_btf());
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(free_enter, __u64 ptr)
{
	__u32 tgid = current_tgid();

	if (ptr && tgid != self_tgid)
		release(heap_space(), ptr);
	return 0;
}

