#!/usr/bin/env bash
# Install the Debian packages memleak-bpf needs to build, test and benchmark.
# Idempotent: when everything is present it only checks and returns.
set -euo pipefail

packages=(
	make gcc g++ clang llvm pkg-config
	libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev
	protobuf-c-compiler libprotobuf-c-dev golang-github-google-pprof-dev libmicrohttpd-dev
	libjemalloc2 libjemalloc-dev libtcmalloc-minimal4 libmimalloc2.0 libcapstone-dev valgrind bpftrace python3 bc util-linux
	redis-tools golang-go prometheus curl gawk perl sqlite3 heaptrack groff-base man-db
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
