#!/usr/bin/env bash
# tests/fresh-machine.sh - CI (.ci/run: tests/deps.sh, then make test and the
# rest) on a fresh Debian 12 root, to show that the README's test command
# needs nothing this machine happens to have (issue 16).
#   tests/fresh-machine.sh DIR [COMMIT]      (as root; make test-fresh)
#   FRESH_CMD='tests/deps.sh && make test-preload' tests/fresh-machine.sh ...
#                  another command than .ci/run, run by bash in the clone
#                  (to re-run the part that failed, on a fresh root too)
# DIR (created if missing; not inside the repo) holds:
#   base/     a pristine `debootstrap --variant=minbase bookworm` with only
#             what the CI machine has besides Debian's base: build-essential,
#             git, python3, ca-certificates. Made once, reused by later runs,
#             never entered itself (remove it to start from a new download).
#   root/     a copy of base/ for this run (the last run's is replaced), plus
#             the Rust toolchain rustup installed on this machine (rustup's
#             home and its proxies in ~/.cargo/bin, copied: no cargo install
#             of ours, no crate registry: crates come from crates.io), and a
#             clean clone of COMMIT (default HEAD) in /build/libuserspacesock.
#             Everything else the tests need must come from tests/deps.sh.
#   run.log   the whole run; skips.log, the run's build/skips.log.
# Inside the root: /proc, /sys, /dev (rbind, a slave: nothing unmounted in
# there reaches this machine's /dev), a fresh devpts is not needed (the
# bind brings /dev/pts), a tmpfs on /dev/shm, /tmp and /run. The root shares
# this machine's network and kernel (a chroot is not a container). Services
# that apt would start (redis-server, nginx) are not started (policy-rc.d),
# since they would run in this machine's network and outlive the run.
# On exit, also on failure or ^C: the processes left in the root are ended
# (by id) and every mount under it is undone; the root stays for inspection.
# Needs: root, debootstrap, the Debian mirror (FRESH_MIRROR), crates.io, and
# rustup's server for what .ci/run installs with rustup (without it, nightly
# and miri come only from the copied toolchain).
set -euo pipefail
# The whole script is one { } block, read before it runs: bash reads a
# script as it goes, and an edit of this file during a 40-minute run (a
# checkout, a rebase) would otherwise run whatever now stands at its offset.
{
# shellcheck disable=SC2317  # cleanup and in_root_pids run from the traps

die() { echo "fresh-machine: $*" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then die "usage: tests/fresh-machine.sh DIR [COMMIT]"; fi
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null || die "needs debootstrap (apt-get install debootstrap)"
command -v rustup >/dev/null || die "needs rustup: its toolchain is what the fresh root gets"

repo=$(cd "$(dirname "$0")/.." && pwd -P)
mkdir -p "$1"
dir=$(cd "$1" && pwd -P)
case "$dir/" in "$repo"/*) die "DIR must be outside the repository" ;; esac
commit=$(git -C "$repo" rev-parse --verify "${2:-HEAD}^{commit}") || die "no commit ${2:-HEAD}"
base=$dir/base root=$dir/root log=$dir/run.log
cmd=${FRESH_CMD:-.ci/run}
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}
rustup_home=$(rustup show home)
cargo_bin=$(dirname "$(command -v rustup)")

# mounts_under PATH: the mount points at or under PATH, deepest first.
mounts_under() {
  awk -v p="$1" '{ m = $5; gsub(/\\040/, " ", m); if (m == p || index(m, p "/") == 1) print m }' \
    /proc/self/mountinfo | sort -r
}
# in_root_pids: the processes whose root directory is the fresh root.
in_root_pids() {
  local d
  for d in /proc/[0-9]*; do
    [ "$(readlink "$d/root" 2>/dev/null)" = "$root" ] && echo "${d#/proc/}"
  done
  return 0
}
cleanup() {
  local rc=$? pids m left
  trap - EXIT INT TERM
  pids=$(in_root_pids)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    sleep 2
    pids=$(in_root_pids)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    sleep 1
  fi
  for m in $(mounts_under "$root"); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
  left=$(mounts_under "$root")
  [ -z "$left" ] || { echo "fresh-machine: still mounted (unmount by hand): $left" >&2; rc=1; }
  exit "$rc"
}

# 1. The pristine base, once.
if [ ! -e "$base/.fresh-machine-base" ]; then
  [ -z "$(mounts_under "$base")" ] || die "$base has mounts under it"
  rm -rf "$base" "$base.tmp"
  echo "fresh-machine: debootstrap bookworm into $base (minbase + build-essential git python3 ca-certificates)"
  debootstrap --variant=minbase --include=build-essential,git,python3,ca-certificates \
    bookworm "$base.tmp" "$mirror" > "$dir/debootstrap.log" 2>&1 ||
    { tail -20 "$dir/debootstrap.log"; die "debootstrap failed (log: $dir/debootstrap.log)"; }
  mv "$base.tmp" "$base"
  date -u +%FT%TZ > "$base/.fresh-machine-base"
fi

# 2. This run's root: a copy of the base, never a root with mounts left.
[ -z "$(mounts_under "$root")" ] || die "$root still has mounts under it: $(mounts_under "$root" | tr '\n' ' ')"
rm -rf "$root"
cp -a "$base" "$root"
rm -f "$root/.fresh-machine-base"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# What a fresh machine has configured that debootstrap leaves to the
# installer: name resolution, the hosts file, a hostname.
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
hostname > "$root/etc/hostname"
cat > "$root/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$(hostname)
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
# The suites a Debian installer adds to the mirror's (debootstrap writes
# only the first line).
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SOURCES
# This machine's own certificate authorities (/usr/local/share/
# ca-certificates): where the network intercepts TLS, crates.io and
# rustup's server are reachable only with them. Not something the tests
# need; a fresh machine on such a network is given them the same way.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in $root"
fi
# No service starts from apt inside the chroot (see the top).
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

# The Rust toolchain as rustup installed it: rustup's home, and of
# ~/.cargo/bin only rustup and its proxies (the files identical to rustup),
# not what cargo install put there (cargo-fuzz: .ci/run installs it).
echo "fresh-machine: copying the rustup toolchains from $rustup_home"
cp -a "$rustup_home" "$root/root/.rustup"
mkdir -p "$root/root/.cargo/bin"
for f in "$cargo_bin"/*; do
  cmp -s "$f" "$cargo_bin/rustup" && cp -a "$f" "$root/root/.cargo/bin/"
done
[ ! -f "$(dirname "$cargo_bin")/env" ] || cp "$(dirname "$cargo_bin")/env" "$root/root/.cargo/env"

# A clean clone of the commit (nothing uncommitted, no build products).
mkdir -p "$root/build"
git clone -q --no-checkout "$repo" "$root/build/libuserspacesock"
git -C "$root/build/libuserspacesock" checkout -q --detach "$commit"

mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$root/tmp"
mount -t tmpfs -o mode=0755,nosuid,nodev run "$root/run"

echo "fresh-machine: $cmd at $commit in $root (log: $log)"
start=$(date +%s)
rc=0
# In the background, waited for: bash runs a trap only once its foreground
# command ends, so a TERM (or ^C) to this script would otherwise wait for
# the whole run; wait returns at once, and cleanup ends what is in the root.
(chroot "$root" /usr/bin/env -i HOME=/root USER=root LOGNAME=root TERM=dumb SHELL=/bin/bash \
  PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash -c "cd /build/libuserspacesock && $cmd" < /dev/null 2>&1 | tee "$log") &
wait "$!" || rc=$?
secs=$(($(date +%s) - start))
cp "$root/build/libuserspacesock/build/skips.log" "$dir/skips.log" 2>/dev/null || : > "$dir/skips.log"
echo "fresh-machine: skips: $(wc -l < "$dir/skips.log") (in $dir/skips.log)"
if [ "$rc" = 0 ]; then
  echo "fresh-machine: PASSED: $cmd at $commit on a fresh Debian 12 root in $((secs / 60)) min $((secs % 60)) s"
else
  echo "fresh-machine: FAILED: $cmd exit $rc at $commit after $((secs / 60)) min $((secs % 60)) s (log: $log)"
fi
exit "$rc"
}
