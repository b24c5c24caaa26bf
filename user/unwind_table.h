/* Building an object's unwind table (struct unwind_row) from its .eh_frame. */
#ifndef UNWIND_TABLE_H
#define UNWIND_TABLE_H

#include <stddef.h>

#include "memleak.h"

/*
 * The rows of the ELF file at path, sorted by file offset, in *rows (to
 * free); -1 if it has no unwind information this can read. Rules the walker
 * cannot follow (signal frames, registers found by other expressions) are
 * CFA_NONE rows: there it falls back to the frame pointer.
 */
int unwind_table_build(const char *path, struct unwind_row **rows, size_t *n);

#endif
