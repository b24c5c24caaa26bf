/* A minimal test harness: each test prints PASS or FAIL with the failed check. */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>

extern int unit_failed;

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			printf("  check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			unit_failed = 1;                                                \
		}                                                                       \
	} while (0)

#endif
