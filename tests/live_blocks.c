/*
 * The live blocks in a memleak-bpf block table (include/memleak.h: struct
 * block_slot): `live_blocks MAP_ID` prints the owner of each, one a line.
 * The end-to-end tests count what a forgotten process left behind with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "memleak.h"

int main(int argc, char **argv)
{
	struct bpf_map_info info = {0};
	__u32 len = sizeof(info);
	const struct block_slot *slots;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: live_blocks MAP_ID\n");
		return 2;
	}
	fd = bpf_map_get_fd_by_id((__u32)strtoul(argv[1], NULL, 0));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) ||
	    info.value_size != sizeof(struct block_slot)) {
		fprintf(stderr, "live_blocks: no block table with id %s\n", argv[1]);
		return 1;
	}
	slots = mmap(NULL, (size_t)info.max_entries * sizeof(*slots), PROT_READ, MAP_SHARED, fd, 0);
	if (slots == MAP_FAILED) {
		perror("live_blocks: mmap");
		return 1;
	}
	for (__u32 i = 0; i < info.max_entries; i++)
		if ((__atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE) & 3) == BLOCK_LIVE)
			printf("%u\n", slots[i].info.owner);
	return 0;
}
