/* Where a function returns to its caller, found by decoding its code: the
 * places a return can be observed without a return probe (whose trampoline
 * an exception cannot unwind through). */
#ifndef RET_SITES_H
#define RET_SITES_H

#include <stdint.h>

#define MAX_RET_SITES 64

/*
 * The file offsets of the ret instructions of the function at file offset
 * `offset`, `size` bytes long, in path, and of the functions it leaves to by
 * a direct jump (tail calls, through its own PLT entries too; their extents
 * from .eh_frame). At each, the
 * stack pointer is the one the function was entered with. Returns how many
 * (at most max), or -1 if the function can leave some other way we cannot
 * follow (an indirect jump, code that does not decode, a jump to code
 * without unwind information).
 */
int ret_sites(const char *path, uint64_t offset, uint64_t size, uint64_t *sites, int max);

#endif
