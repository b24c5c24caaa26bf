#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "preflight.h"

#define CAP_SYS_ADMIN_BIT 21
#define CAP_PERFMON_BIT	  38
#define CAP_BPF_BIT	  39
#define TRACEFS_MAGIC	  0x74726163
#define TRACEFS_DIR	  "/sys/kernel/tracing"

static unsigned long long effective_caps(void)
{
	char line[256];
	unsigned long long caps = 0;
	FILE *f = fopen("/proc/self/status", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	if (f)
		fclose(f);
	return caps;
}

int check_privileges(char *err, size_t errlen)
{
	unsigned long long caps = effective_caps();
	unsigned long long bpf = (1ull << CAP_BPF_BIT) | (1ull << CAP_PERFMON_BIT);

	if (geteuid() == 0 || (caps & bpf) == bpf || (caps & (1ull << CAP_SYS_ADMIN_BIT)))
		return 0;
	snprintf(err, errlen,
		 "needs root or the CAP_BPF and CAP_PERFMON capabilities: run it with sudo");
	return -1;
}

int check_btf(char *err, size_t errlen)
{
	/* The override lets the tests stand in for a kernel without BTF. */
	const char *path = getenv("MEMLEAK_BPF_BTF");

	if (!path)
		path = "/sys/kernel/btf/vmlinux";
	if (access(path, R_OK) == 0)
		return 0;
	snprintf(err, errlen,
		 "the kernel has no BTF (%s: %s): memleak-bpf needs a kernel built with "
		 "CONFIG_DEBUG_INFO_BTF=y",
		 path, strerror(errno));
	return -1;
}

int ensure_tracefs(char *err, size_t errlen)
{
	struct statfs st;

	if (statfs(TRACEFS_DIR, &st) == 0 && st.f_type == TRACEFS_MAGIC)
		return 0;
	if (mount("nodev", TRACEFS_DIR, "tracefs", 0, NULL) == 0)
		return 0;
	snprintf(err, errlen,
		 "tracefs is not mounted and mounting it failed (%s): mount it with "
		 "'mount -t tracefs nodev " TRACEFS_DIR "'",
		 strerror(errno));
	return -1;
}
