/* Building an object's unwind table (struct unwind_row) from its .eh_frame. */
#ifndef UNWIND_TABLE_H
#define UNWIND_TABLE_H

#include <stddef.h>

#include "memleak.h"

/*
 * The rows of the ELF file at path, sorted by file offset, in *rows (to
 * free); -1 if it has no unwind information this can read, -2 if it cannot
 * be opened. They come from
 * .eh_frame, and from .debug_frame for code .eh_frame leaves out (in the
 * file, or in its separate debug file: found by build ID, or by debug link
 * next to debug_path, the file's name where it is installed; NULL: path).
 * Rules the walker cannot follow (signal frames, registers found by other
 * expressions) are CFA_NONE rows: there it falls back to the frame pointer.
 */
int unwind_table_build(const char *path, const char *debug_path, struct unwind_row **rows,
		       size_t *n);

#endif
