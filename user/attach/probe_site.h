/* Where a function's probe goes: the first instruction of its prologue the
 * kernel emulates, rather than one it must single-step out of line. */
#ifndef PROBE_SITE_H
#define PROBE_SITE_H

#include <stdint.h>

/*
 * The file offset to probe the function at file offset `offset`, `size`
 * bytes long, in path, whose first `nargs` integer arguments the probe
 * reads: the first instruction from its entry that the kernel emulates
 * (push of a register, a relative jmp, jcc or call, a nop), if every
 * instruction before it leaves those argument registers and the stack
 * pointer alone (so a return probe there still finds the return address on
 * top of the stack), does not branch, and no direct branch in the function
 * lands after its entry and at or before it (the probe would be hit twice).
 * Otherwise, or if the code cannot be read, the entry itself.
 */
uint64_t probe_site(const char *path, uint64_t offset, uint64_t size, int nargs);
/* The same for a function's code in memory, found at file offset `offset`. */
uint64_t probe_site_code(const uint8_t *code, uint64_t size, uint64_t offset, int nargs);

#endif
