#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "discover.h"
#include "elf_file.h"
#include "util.h"

#define MAX_OBJECTS 512

static const char *const default_dirs[] = {
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
};

static void add_path(struct objlist *l, const char *path)
{
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->paths[i], path) == 0)
			return;
	l->paths = xrealloc(l->paths, (l->n + 1) * sizeof(char *));
	l->paths[l->n++] = xstrdup(path);
}

void objlist_add(struct objlist *l, const char *path)
{
	char real[PATH_MAX];

	if (realpath(path, real))
		add_path(l, real);
}

void objlist_free(struct objlist *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
	l->paths = NULL;
	l->n = 0;
}

/* Try each directory of a ':'-separated list; $ORIGIN stands for origin. */
static bool find_in_dirs(const char *dirs, const char *origin, const char *name, char *out)
{
	char *copy, *save, *dir;
	bool found = false;

	if (!dirs)
		return false;
	copy = xstrdup(dirs);
	for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		if (strncmp(dir, "$ORIGIN", 7) == 0)
			snprintf(out, PATH_MAX, "%s%s/%s", origin, dir + 7, name);
		else
			snprintf(out, PATH_MAX, "%s/%s", dir, name);
		found = access(out, R_OK) == 0;
	}
	free(copy);
	return found;
}

static bool find_in_ld_so_conf(const char *name, char *out)
{
	glob_t g;
	bool found = false;

	if (glob("/etc/ld.so.conf.d/*.conf", 0, NULL, &g))
		return false;
	for (size_t i = 0; i < g.gl_pathc && !found; i++) {
		FILE *f = fopen(g.gl_pathv[i], "re");
		char line[PATH_MAX];

		while (f && !found && fgets(line, sizeof(line), f)) {
			line[strcspn(line, " \t\r\n")] = '\0';
			if (line[0] == '/')
				found = find_in_dirs(line, "", name, out);
		}
		if (f)
			fclose(f);
	}
	globfree(&g);
	return found;
}

/* Where the dynamic linker would find a DT_NEEDED or LD_PRELOAD name. */
static bool find_library(const char *name, const struct elf_deps *from, const char *origin,
			 char *out)
{
	if (strchr(name, '/')) {
		snprintf(out, PATH_MAX, "%s", name);
		return access(out, R_OK) == 0;
	}
	if (from && find_in_dirs(from->runpath, origin, name, out))
		return true;
	if (find_in_dirs(getenv("LD_LIBRARY_PATH"), origin, name, out))
		return true;
	if (find_in_ld_so_conf(name, out))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(default_dirs); i++)
		if (find_in_dirs(default_dirs[i], "", name, out))
			return true;
	return false;
}

static void add_preloads(struct objlist *out)
{
	const char *env = getenv("LD_PRELOAD");
	char *copy, *save, *name;
	char path[PATH_MAX];

	if (!env)
		return;
	copy = xstrdup(env);
	for (name = strtok_r(copy, " :", &save); name; name = strtok_r(NULL, " :", &save))
		if (find_library(name, NULL, "", path))
			objlist_add(out, path);
	free(copy);
}

/* The program execve would run for file: itself, or a script's interpreter. */
static int program_of(const char *file, char *out)
{
	char head[PATH_MAX + 2] = "";
	FILE *f = fopen(file, "re");
	size_t n;

	if (!f)
		return -1;
	n = fread(head, 1, sizeof(head) - 1, f);
	fclose(f);
	head[n] = '\0';
	if (n >= 4 && memcmp(head, "\177ELF", 4) == 0) {
		snprintf(out, PATH_MAX, "%s", file);
		return 0;
	}
	if (n < 2 || head[0] != '#' || head[1] != '!')
		return -1;
	head[strcspn(head, "\n")] = '\0';
	n = strspn(head + 2, " \t") + 2;
	head[n + strcspn(head + n, " \t")] = '\0';
	snprintf(out, PATH_MAX, "%s", head + n);
	return access(out, X_OK);
}

int discover_command(const char *file, struct objlist *out)
{
	char path[PATH_MAX], exe[PATH_MAX];

	if (program_of(file, exe))
		return -1;
	objlist_add(out, exe);
	if (out->n == 0)
		return -1;
	add_preloads(out);
	/* Breadth first, as the dynamic linker walks DT_NEEDED. */
	for (int i = 0; i < out->n && out->n < MAX_OBJECTS; i++) {
		struct elf_deps deps;
		char origin[PATH_MAX];

		if (elf_read_deps(out->paths[i], &deps))
			continue;
		snprintf(origin, sizeof(origin), "%s", out->paths[i]);
		*strrchr(origin, '/') = '\0';
		for (int k = 0; k < deps.nneeded; k++)
			if (find_library(deps.needed[k], &deps, origin, path))
				objlist_add(out, path);
		elf_deps_free(&deps);
	}
	return 0;
}

int discover_pid(pid_t pid, struct objlist *out)
{
	char maps[64], line[PATH_MAX + 128], path[PATH_MAX + 32];
	FILE *f;

	snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	f = fopen(maps, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char perms[8];
		char *file = strchr(line, '/');

		if (sscanf(line, "%*s %7s", perms) != 1 || perms[2] != 'x' || !file)
			continue;
		file[strcspn(file, "\n")] = '\0';
		/* A file deleted since it was mapped (a library upgraded under a
		 * running server) is still reached through the mapping itself. */
		if (strstr(file, " (deleted)")) {
			snprintf(path, sizeof(path), "/proc/%d/map_files/%.*s", pid,
				 (int)strcspn(line, " "), line);
			add_path(out, path);
			continue;
		}
		/* The process may live in another mount namespace. */
		snprintf(path, sizeof(path), "/proc/%d/root%s", pid, file);
		objlist_add(out, path);
	}
	fclose(f);
	return 0;
}

int discover_system(struct objlist *out)
{
	static const char *const libs[] = {
	    "libc.so.6",	"libstdc++.so.6",	    "libjemalloc.so.2",
	    "libtcmalloc.so.4", "libtcmalloc_minimal.so.4", "libmimalloc.so.2",
	};
	char path[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(libs); i++)
		if (find_library(libs[i], NULL, "", path))
			objlist_add(out, path);
	return out->n ? 0 : -1;
}
