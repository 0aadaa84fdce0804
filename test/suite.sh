#!/usr/bin/env bash
# The test suite's one entry point (`npm test`): installs what the tests need
# when it is missing (Debian packages, node_modules), checks the types
# (`tsc --noEmit`), then runs `bun test` with the arguments given
# (`npm test -- test/cli.test.ts` runs one file).
# The suite needs root: it makes cgroups, boots VMs and makes network
# namespaces.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

say() { printf '[test] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 2; }

# What the tests use from Debian: the libvirt packages and nginx are installed
# with services kept from starting (the vagrant-libvirt tests run a libvirtd of
# their own inside a network namespace they make; the proxy tests run an nginx
# of their own on 127.0.0.1, not the package's on port 80; the Slurm test runs a munged,
# slurmctld and slurmd of its own, configured in a temporary folder).
PACKAGES=(curl gzip sqlite3 time util-linux iproute2 linux-perf valgrind chromium fonts-dejavu-core openssh-server openssh-client ruby nginx
  qemu-system-x86 qemu-utils debootstrap e2fsprogs xz-utils cpio
  libvirt-daemon-system libvirt-clients dnsmasq-base iptables vagrant vagrant-libvirt
  slurmctld slurmd slurm-client munge)

[[ $(id -u) -eq 0 ]] || die "the tests need root (memory cgroups, VMs, network namespaces): run sudo npm test"

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  command -v apt-get >/dev/null 2>&1 || die "missing Debian packages ${missing[*]} and no apt-get to install them: install them by hand"
  say "installing ${missing[*]} (a new machine: a few minutes)"
  # No service starts during the install; whatever policy was there comes back.
  policy=/usr/sbin/policy-rc.d
  saved=""
  if [[ -e $policy ]]; then saved=$(mktemp); cp -p "$policy" "$saved"; fi
  restore() {
    if [[ -n $saved ]]; then cp -p "$saved" "$policy"; rm -f "$saved"; else rm -f "$policy"; fi
  }
  trap restore EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  restore
  trap - EXIT
fi

# node_modules as package-lock.json says, when it is missing or older.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "npm ci"
  npm ci
fi
export PATH="$ROOT/node_modules/.bin:$PATH"

# Go's own installer puts it in /usr/local/go without touching PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null 2>&1 || die "go is not on PATH: the tests build PicoShare with it (install Go, https://go.dev/dl)"
say "$(go version); bun $(bun --version)"

# The types of every script, module and test, checked before any test runs
# (about 10 s): a type error stops the suite here.
say "tsc --noEmit"
if ! tsc --noEmit; then
  say "ERROR: tsc --noEmit found type errors (listed above): fix them, then run the tests again"
  exit 1
fi

exec bun test "$@"
