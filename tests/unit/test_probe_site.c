/* Probe sites: past the prologue's first instructions only to one the kernel
 * emulates, and only where the arguments and the stack are still untouched. */
#include "probe_site.h"
#include "unit.h"

#define SITE(nargs, ...)                                                                           \
	({                                                                                         \
		static const uint8_t code[] = {__VA_ARGS__};                                       \
		probe_site_code(code, sizeof(code), 0x1000, nargs) - 0x1000;                       \
	})

void test_probe_site_prologues(void)
{
	/* glibc's free: test %rdi,%rdi; je: the je. */
	CHECK(SITE(1, 0x48, 0x85, 0xff, 0x74, 0x02, 0x90, 0x90, 0xc3) == 3);
	/* glibc's posix_memalign: cmpb $0,(%rip); push %r12: the push. */
	CHECK(SITE(3, 0x80, 0x3d, 0, 0, 0, 0, 0, 0x41, 0x54, 0xc3) == 7);
	/* a push first: the entry itself. */
	CHECK(SITE(1, 0x41, 0x54, 0x55, 0xc3) == 0);
	/* mimalloc's malloc: mov %rdi,%rsi; mov %fs:(%rax),%rdi (the size is
	 * gone from rdi) before any push: the entry. */
	CHECK(SITE(1, 0x48, 0x89, 0xfe, 0x64, 0x48, 0x8b, 0x38, 0x53, 0xc3) == 0);
	/* sub $8,%rsp moves the stack (a return probe would miss the return
	 * address): the entry. */
	CHECK(SITE(1, 0x48, 0x83, 0xec, 0x08, 0x53, 0xc3) == 0);
	/* mov %rdi,%rdx; je: fine for one argument, not for three. */
	CHECK(SITE(1, 0x48, 0x89, 0xfa, 0x74, 0x01, 0xc3, 0xc3) == 3);
	CHECK(SITE(3, 0x48, 0x89, 0xfa, 0x74, 0x01, 0xc3, 0xc3) == 0);
	/* test; je; jmp back to the je: the je would be hit twice: the entry. */
	CHECK(SITE(1, 0x48, 0x85, 0xff, 0x74, 0x02, 0xeb, 0xfc, 0xc3) == 0);
	/* code that does not decode to its end: the entry. */
	CHECK(SITE(1, 0x48, 0x85, 0xff, 0x74, 0x02, 0x0f) == 0);
}
