/*
 * Memory that is not a leak although RSS climbs: reads through a mapped file,
 * 10 MiB a second, for argv[1] seconds. Its resident pages are the file's
 * (page cache), not anonymous memory, and its page tables are all made at
 * the start, so with -k its kernel memory stays flat too.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB (1L << 20)

int main(int argc, char **argv)
{
	int ticks = (int)((argc > 1 ? atof(argv[1]) : 30) * 10);
	char path[] = "/tmp/map_reader.XXXXXX";
	int fd = mkstemp(path);
	volatile char *file;
	long sum = 0;

	if (fd < 0 || ftruncate(fd, (ticks + 1) * MIB))
		return 1;
	unlink(path);
	file = mmap(NULL, (ticks + 1) * MIB, PROT_READ, MAP_SHARED, fd, 0);
	if (file == MAP_FAILED)
		return 1;
	/* A page per fault, no readahead: RSS climbs as the loop reads. Page
	 * tables for the whole mapping now (a page every 2 MiB): what climbs
	 * from here on is the file's pages alone, not kernel memory. */
	madvise((void *)file, (ticks + 1) * MIB, MADV_RANDOM);
	for (long off = 0; off < (ticks + 1) * MIB; off += 2 * MIB)
		sum += file[off];
	for (int i = 0; i < ticks; i++) {
		for (long off = 0; off < MIB; off += 4096)
			sum += file[i * MIB + off];
		usleep(100000);
	}
	return (int)(sum & 1);
}
