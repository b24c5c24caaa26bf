/* Load the library named by argv[1], wait argv[2] ms, let it leak (3 x 777 B
 * in dl_leak), close it, leak 1 x 55 B of its own and wait argv[3] ms; exits
 * 0, or 1 if the library cannot be loaded. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void *kept;

int main(int argc, char **argv)
{
	void *lib = argc > 1 ? dlopen(argv[1], RTLD_NOW) : NULL;
	void (*leak)(void);

	if (!lib || !(leak = (void (*)(void))dlsym(lib, "dl_leak"))) {
		fprintf(stderr, "dlopen_leak: %s\n", dlerror());
		return 1;
	}
	usleep(argc > 2 ? atoi(argv[2]) * 1000 : 0);
	leak();
	dlclose(lib);
	kept = malloc(55);
	usleep(argc > 3 ? atoi(argv[3]) * 1000 : 0);
	return 0;
}
