/* The reachability classes on a memory image whose answer is known. */
#include <string.h>

#include "reach.h"
#include "unit.h"

#define BASE 0x10000000ULL
#define SIZE 65536

static __u64 image[SIZE / 8];

static ssize_t read_image(void *ctx, __u64 addr, void *buf, size_t len)
{
	(void)ctx;
	if (addr < BASE || addr >= BASE + SIZE)
		return -1;
	if (addr + len > BASE + SIZE)
		len = BASE + SIZE - addr;
	memcpy(buf, (char *)image + (addr - BASE), len);
	return (ssize_t)len;
}

static void put(__u64 off, __u64 value)
{
	image[off / 8] = value;
}

/*
 * Blocks (offset, size): A 0x100 reached from a register, B from A's first
 * word; C only through a pointer into its middle, D from C; E leads a lost
 * tree with F; G and H point to each other; I is reached 8 bytes in, past a
 * header that holds its size less 8 (valgrind's length64); J and the empty
 * block Z are pointed to by memory between the blocks.
 */
void test_reach_kinds(void)
{
	static const struct {
		char name;
		__u64 off, size;
		enum reach_kind want;
	} want[] = {
	    {'A', 0x100, 64, REACH_REACHABLE}, {'B', 0x200, 32, REACH_REACHABLE},
	    {'C', 0x300, 64, REACH_POSSIBLE},  {'D', 0x400, 16, REACH_POSSIBLE},
	    {'E', 0x500, 32, REACH_LOST},      {'F', 0x600, 16, REACH_INDIRECT},
	    {'G', 0x700, 16, REACH_LOST},      {'H', 0x800, 16, REACH_INDIRECT},
	    {'I', 0x900, 40, REACH_REACHABLE}, {'J', 0xa00, 16, REACH_REACHABLE},
	    {'Z', 0xb00, 0, REACH_REACHABLE},
	};
	const size_t n = sizeof(want) / sizeof(want[0]);
	struct reach_mem mem = {.read = read_image};
	struct reach_block b[sizeof(want) / sizeof(want[0])];
	__u64 regs[3] = {BASE + 0x100, BASE + 0x300 + 8, BASE + 0x900 + 8};
	struct reach r;

	memset(image, 0, sizeof(image));
	put(0x100, BASE + 0x200);		   /* A -> B */
	put(0x300, BASE + 0x400);		   /* C -> D */
	put(0x500, BASE + 0x600);		   /* E -> F */
	put(0x700, BASE + 0x800);		   /* G -> H */
	put(0x800, BASE + 0x700);		   /* H -> G */
	put(0x900, 40 - 8);			   /* I's header */
	put(0x50, BASE + 0xa00);		   /* -> J, between blocks */
	put(0x58, BASE + 0xb00);		   /* -> Z */
	for (size_t i = 0; i < n; i++) /* given out of order: sorted by reach_init */
		b[n - 1 - i] = (struct reach_block){.addr = BASE + want[i].off,
						    .size = want[i].size,
						    .stack_id = want[i].name};
	CHECK(reach_init(&r, b, n, &mem) == 0);
	CHECK(reach_find(&r, BASE + 0x100 + 63) == 0 && reach_find(&r, BASE + 0x100 + 64) < 0);
	CHECK(reach_find(&r, BASE + 0xb00) == 10 && reach_find(&r, BASE + 0xb01) < 0);
	reach_words(&r, regs, 3);
	reach_range(&r, BASE, BASE + SIZE);
	reach_finish(&r);
	for (size_t i = 0; i < n; i++) {
		CHECK(b[i].stack_id == (__u64)want[i].name && b[i].kind == want[i].want);
		if (b[i].kind != want[i].want)
			printf("  block %c: kind %d, want %d\n", want[i].name, b[i].kind,
			       want[i].want);
	}
	/* Roots are the bytes between blocks: A's, B's ... contents are not. */
	CHECK(r.scanned_bytes < SIZE + 3 * 8 + 64 + 32 + 64 + 16 + 32 + 16 + 16 + 16 + 40 + 16);
	CHECK(r.unread_bytes == 0);
	reach_free(&r);
}
