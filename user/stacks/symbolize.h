/* Turning user-space addresses of one process into symbol, module, file:line. */
#ifndef SYMBOLIZE_H
#define SYMBOLIZE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct frame {
	uint64_t addr;
	uint64_t offset;  /* from the symbol's start */
	char symbol[256]; /* empty: no symbol table covers addr */
	char module[256];
	char file[256]; /* empty: no debug info */
	int line;
	bool inlined; /* a function inlined into the next frame, at the same address */
	/* The mapping of the file that holds addr, when a file does. */
	uint64_t map_start, map_end, map_offset;
	char build_id[41]; /* hex; empty: none known */
};

/* Keeps the process's memory map, so that it still serves once the process is gone. */
struct symbolizer {
	pid_t pid;
	char *maps;
	struct Dwfl *dwfl;
};

void symbolizer_init(struct symbolizer *s, pid_t pid);
/* Reread the map while the process lives; returns false once it is gone. */
bool symbolizer_refresh(struct symbolizer *s);
/* addr is a return address: its line is looked up at addr - 1, the call.
 * Functions inlined there are frames of their own: *frames (to free) gets
 * them innermost first, then the function they were inlined into; returns
 * how many (at least 1). */
int symbolizer_frames(struct symbolizer *s, uint64_t addr, struct frame **frames);
/* The innermost of those. */
void symbolizer_lookup(struct symbolizer *s, uint64_t addr, struct frame *f);
void symbolizer_free(struct symbolizer *s);

#endif
