/*
 * Memory that is not a leak although RSS climbs: reads through a mapped file,
 * 10 MiB a second, for argv[1] seconds. Its resident pages are the file's
 * (page cache), not anonymous memory.
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
	for (int i = 0; i < ticks; i++) {
		for (long off = 0; off < MIB; off += 4096)
			sum += file[i * MIB + off];
		usleep(100000);
	}
	return (int)(sum & 1);
}
