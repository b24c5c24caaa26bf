# memleak-bpf: make, make test, make demo, make bench
CC      ?= gcc
CLANG   ?= clang
BPFTOOL ?= bpftool
BUILD   := build
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror
# The loader by stage: attach, stacks, judge, report; the run's flow on top.
USER_DIRS := user user/attach user/stacks user/judge user/report
CPPFLAGS += -Iinclude -I$(BUILD) $(addprefix -I,$(USER_DIRS)) -D_GNU_SOURCE
LDLIBS  := -lbpf -ldw -lelf -lcapstone -lprotobuf-c -lmicrohttpd -lz -lstdc++ -lm
# pprof's profile.proto, as Debian ships it (golang-github-google-pprof-dev)
PROFILE_PROTO ?= /usr/share/gocode/src/github.com/google/pprof/proto/profile.proto

USER_SRC := $(foreach d,$(USER_DIRS),$(wildcard $(d)/*.c))
USER_HDR := $(foreach d,$(USER_DIRS),$(wildcard $(d)/*.h))
USER_OBJ := $(patsubst user/%.c,$(BUILD)/user/%.o,$(USER_SRC)) $(BUILD)/profile.pb-c.o
LIB_OBJ  := $(filter-out $(BUILD)/user/main.o,$(USER_OBJ))
UNIT_SRC := $(wildcard tests/unit/*.c)
SKELS    := $(BUILD)/memleak.skel.h $(BUILD)/kmem.skel.h

WORKLOADS := leaky_all leaky_all_vg leaky_cxx leaky_cxx_je threads attach_target demo_leaky bench_pairs flood server_like pipe_holder short_lived map_reader fill_then_hold exec_thread new_fails new_fails_je new_fails_tc storm many_stacks survivor fork_exec realloc_race realloc_unknown signal_alloc clone_noexit signal_count thread_exit chatty clone_vm_free thread_churn pid_reuse deep_nofp deep_fp thread_leak inline_nest deep_split cxx_template dlopen_leak libdlleak.so recurse deep_dbgframe static_stripped oldest two_callers page_drip page_events reach_kinds reach_many prefork fork_leak
WORKLOAD_BIN := $(addprefix $(BUILD)/workloads/,$(WORKLOADS))
WL_CFLAGS := -O1 -g -fno-builtin -fno-omit-frame-pointer -fno-optimize-sibling-calls -fno-inline

.PHONY: all deps test demo bench clean format install uninstall FORCE
.SECONDARY:
all: memleak-bpf

deps:
	@scripts/install-deps.sh

# vmlinux.h comes from the running kernel's BTF; the committed copy stands in
# where there is no BTF or no bpftool.
vmlinux/vmlinux.h:
	@if [ -r /sys/kernel/btf/vmlinux ] && command -v $(BPFTOOL) >/dev/null; then \
		$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@; \
	else cp vmlinux/vmlinux_x86_64.h $@; fi

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) include/memleak.h vmlinux/vmlinux.h
	@mkdir -p $(@D)
	$(CLANG) -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -Ivmlinux -Iinclude -Wall -Werror -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $*_bpf > $@.tmp && mv $@.tmp $@

$(BUILD)/profile.pb-c.c $(BUILD)/profile.pb-c.h: $(PROFILE_PROTO)
	@mkdir -p $(@D)
	protoc-c --c_out=$(BUILD) -I$(dir $(PROFILE_PROTO)) $(PROFILE_PROTO)

$(BUILD)/profile.pb-c.o: $(BUILD)/profile.pb-c.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/user/%.o: user/%.c $(USER_HDR) include/memleak.h $(SKELS) $(BUILD)/profile.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c $< -o $@

# The build's git describe, for --version: rewritten only when it changes.
$(BUILD)/version.h: FORCE
	@mkdir -p $(@D)
	@echo "#define BUILD_DESCRIBE \"$$(git describe --always --dirty 2>/dev/null)\"" > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@

$(BUILD)/user/options.o: $(BUILD)/version.h

memleak-bpf: $(USER_OBJ)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/unit_tests: $(UNIT_SRC) $(LIB_OBJ)
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) $(WARN) $^ $(LDLIBS) -o $@

$(BUILD)/probe_sites: tests/probe_sites.c $(LIB_OBJ)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $^ $(LDLIBS) -o $@

$(BUILD)/live_blocks: tests/live_blocks.c include/memleak.h
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $< -lbpf -o $@

$(BUILD)/floor_probes: tests/floor_probes.c $(LIB_OBJ) $(BUILD)/floor.bpf.o
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $< $(LIB_OBJ) $(LDLIBS) -o $@

$(BUILD)/workloads/%: tests/workloads/%.c
	@mkdir -p $(@D)
	$(CC) $(WL_CFLAGS) $< -lpthread -o $@

$(BUILD)/workloads/%: tests/workloads/%.cpp
	@mkdir -p $(@D)
	g++ $(WL_CFLAGS) $< -o $@

$(BUILD)/workloads/leaky_all_vg: tests/workloads/leaky_all.c
	@mkdir -p $(@D)
	$(CC) $(WL_CFLAGS) -DNO_PVALLOC $< -o $@

$(BUILD)/workloads/static_stripped: tests/workloads/static_stripped.c
	@mkdir -p $(@D)
	$(CC) -O2 -static -s $< -o $@

$(BUILD)/workloads/leaky_cxx_je: tests/workloads/leaky_cxx.cpp
	@mkdir -p $(@D)
	g++ $(WL_CFLAGS) $< -ljemalloc -o $@

$(BUILD)/workloads/new_fails_je: tests/workloads/new_fails.cpp
	@mkdir -p $(@D)
	g++ $(WL_CFLAGS) $< -ljemalloc -o $@

$(BUILD)/workloads/new_fails_tc: tests/workloads/new_fails.cpp
	@mkdir -p $(@D)
	g++ $(WL_CFLAGS) $< -l:libtcmalloc_minimal.so.4 -o $@

# Built as distributions build: -O2, no frame pointers (deep_fp: with them).
OPT_CFLAGS := -O2 -g -fno-builtin-malloc

$(BUILD)/workloads/deep_nofp: tests/workloads/deep.c
	@mkdir -p $(@D)
	$(CC) $(OPT_CFLAGS) -fomit-frame-pointer $< -o $@

$(BUILD)/workloads/deep_fp: tests/workloads/deep.c
	@mkdir -p $(@D)
	$(CC) $(OPT_CFLAGS) -fno-omit-frame-pointer $< -o $@

$(BUILD)/workloads/inline_nest: tests/workloads/inline_nest.c
	@mkdir -p $(@D)
	$(CC) $(OPT_CFLAGS) -fomit-frame-pointer $< -o $@

$(BUILD)/workloads/thread_leak: tests/workloads/thread_leak.c
	@mkdir -p $(@D)
	$(CC) $(OPT_CFLAGS) -fomit-frame-pointer $< -lpthread -o $@

# The debug information in a separate file, as Debian's -dbgsym packages ship it.
$(BUILD)/workloads/deep_split: $(BUILD)/workloads/deep_nofp
	cp $< $@
	objcopy --only-keep-debug $@ $@.debug
	strip --strip-debug $@
	objcopy --add-gnu-debuglink=$@.debug $@

# No .eh_frame for its own code: .debug_frame only, in a separate debug file.
$(BUILD)/workloads/deep_dbgframe: tests/workloads/deep.c
	@mkdir -p $(@D)
	$(CC) $(OPT_CFLAGS) -fomit-frame-pointer -fno-asynchronous-unwind-tables -fno-unwind-tables $< -o $@
	objcopy --only-keep-debug $@ $@.debug
	strip --strip-debug $@
	objcopy --add-gnu-debuglink=$@.debug $@

$(BUILD)/workloads/cxx_template: tests/workloads/cxx_template.cpp
	@mkdir -p $(@D)
	g++ $(OPT_CFLAGS) -fomit-frame-pointer $< -o $@

$(BUILD)/workloads/libdlleak.so: tests/workloads/dlleak.c
	@mkdir -p $(@D)
	$(CC) $(OPT_CFLAGS) -fomit-frame-pointer -shared -fPIC $< -o $@

$(BUILD)/workloads/dlopen_leak: tests/workloads/dlopen_leak.c
	@mkdir -p $(@D)
	$(CC) $(OPT_CFLAGS) -fomit-frame-pointer $< -ldl -o $@

test: deps memleak-bpf $(BUILD)/unit_tests $(BUILD)/probe_sites $(BUILD)/live_blocks $(WORKLOAD_BIN)
	@python3 tests/run.py

# The demo's leak is called by its curve, proven by its exit scan: status 3.
demo: deps memleak-bpf $(BUILD)/workloads/demo_leaky
	@./memleak-bpf --fail-on-leak 5 -- $(BUILD)/workloads/demo_leaky; status=$$?; \
	echo "memleak-bpf exited with status $$status (3: a leak, with --fail-on-leak)"; \
	test $$status = 3

bench: deps memleak-bpf $(BUILD)/workloads/fill_then_hold $(BUILD)/floor_probes $(BUILD)/workloads/bench_pairs $(BUILD)/workloads/flood $(BUILD)/workloads/deep_nofp $(BUILD)/workloads/deep_fp $(BUILD)/workloads/reach_many
	@scripts/bench.sh

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, the man page,
# the watcher's systemd unit (run from where the binary went) and the
# Prometheus alert rules.
PREFIX ?= /usr/local
SBINDIR := $(PREFIX)/sbin
MANDIR  := $(PREFIX)/share/man/man8
UNITDIR := $(PREFIX)/lib/systemd/system
DATADIR := $(PREFIX)/share/memleak-bpf

install: memleak-bpf
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DATADIR)
	install -m 755 memleak-bpf $(DESTDIR)$(SBINDIR)/memleak-bpf
	gzip -9n < docs/memleak-bpf.8 > $(DESTDIR)$(MANDIR)/memleak-bpf.8.gz
	chmod 644 $(DESTDIR)$(MANDIR)/memleak-bpf.8.gz
	sed 's|/usr/local/sbin/memleak-bpf|$(SBINDIR)/memleak-bpf|' scripts/memleak-bpf.service > $(DESTDIR)$(UNITDIR)/memleak-bpf.service
	chmod 644 $(DESTDIR)$(UNITDIR)/memleak-bpf.service
	install -m 644 scripts/memleak-bpf.rules.yml $(DESTDIR)$(DATADIR)/memleak-bpf.rules.yml

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/memleak-bpf $(DESTDIR)$(MANDIR)/memleak-bpf.8.gz \
		$(DESTDIR)$(UNITDIR)/memleak-bpf.service $(DESTDIR)$(DATADIR)/memleak-bpf.rules.yml
	-rmdir $(DESTDIR)$(DATADIR)

format:
	clang-format -i bpf/*.c bpf/*.h include/*.h $(USER_SRC) $(USER_HDR) tests/unit/*.c tests/workloads/*.c tests/workloads/*.cpp

clean:
	rm -rf $(BUILD) memleak-bpf vmlinux/vmlinux.h
