#!/usr/bin/env bash
# tests/deps.sh - what make test needs beyond Rust and a C compiler, in one
# list: the Debian packages of the real programs the tests run (strace,
# netcat, socat, curl, redis, nginx, wrk, iperf3, D-Bus, Xvfb...) and the
# nightly toolchain with rust-src of the sanitized library build.
#   tests/deps.sh          install what is missing: apt-get as root, rustup
#                          for nightly; where that cannot be done, say what
#                          is missing and which tests will skip (by name)
#   tests/deps.sh --check  only say what is missing (exit 1 if anything is)
# make test runs it first, so the README's test command works on a fresh
# Debian machine as it does in CI (.ci/run).
set -uo pipefail

# procps: ps, which programs14.sh and usockstat.sh use, and pkill (bench/); not in a
# minimal Debian (debootstrap minbase, container images: make test-fresh
# found it missing).
# postgresql: initdb, postgres, psql and pgbench of programs15.sh, whose
# skip "postgresql" fails make test without them.
# haproxy, lighttpd, apache2-utils (ab): programs13.sh; systemd
# (systemd-socket-activate), gunicorn and openssh-server (sshd, with
# ssh): programs15.sh.
# tests/engine and bench/engine.sh: iproute2 (ip netns, ip tuntap, veth,
# bridge), curl, nginx-light, iperf3, python3 (http.server), all listed;
# tests/engine/run.sh: ethtool (the TAP's offloads after exit);
# tests/engine/dhcp.sh: dnsmasq-base (the dnsmasq program alone, without
# the dnsmasq package's system service: the test runs its own).
PACKAGES=(build-essential pkg-config strace git python3 netcat-openbsd socat
  curl iproute2 redis-server redis-tools nginx-light wrk iperf3 dbus-daemon
  dbus-bin libglib2.0-bin xvfb x11-utils man-db tcpdump procps postgresql
  haproxy lighttpd apache2-utils systemd gunicorn dnsmasq-base openssh-server ethtool)
# tests/preload/python_suites.sh: the standard library's tests of Debian's
# python3 (its version's testsuite package; 3.11 on Debian 12).
pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3.11)
PACKAGES+=("libpython$pyver-testsuite")

check_only=
[ "${1-}" = --check ] && check_only=yes

missing=()
for pkg in "${PACKAGES[@]}"; do
  # Installed, not only its configuration left after a removal.
  [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] ||
    missing+=("$pkg")
done
if ! command -v dpkg >/dev/null; then
  echo "deps: not a Debian system (no dpkg): install the equivalents of: ${PACKAGES[*]}"
  missing=()
fi

status=0
if [ "${#missing[@]}" -gt 0 ]; then
  if [ -z "$check_only" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The servers' packages start their services on install: nginx and
    # lighttpd both on port 80, where the second one's start would fail its
    # postinst, and the install with it. The tests start their own servers:
    # no service is started meanwhile (policy-rc.d 101, which invoke-rc.d
    # and deb-systemd-invoke obey), unless the machine has its own policy.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      trap 'rm -f "$policy"' EXIT
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
    fi
    if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
      echo "deps: apt-get could not install ${missing[*]}: the tests that need them skip by name (and fail unless ALLOW_SKIP names them)"
      status=1
    fi
    [ -z "$policy" ] || { rm -f "$policy"; trap - EXIT; }
  else
    echo "deps: missing Debian packages: ${missing[*]}"
    echo "deps: install them (as root: apt-get install ${missing[*]}), or the tests that need them skip by name (and fail unless ALLOW_SKIP names them)"
    status=1
  fi
fi

# The sanitized build (make test-sanitize) needs nightly with rust-src.
if ! rustup run nightly rustc --print sysroot >/dev/null 2>&1 ||
   [ ! -d "$(rustup run nightly rustc --print sysroot 2>/dev/null)/lib/rustlib/src/rust/library" ]; then
  if [ -z "$check_only" ] && command -v rustup >/dev/null &&
     rustup toolchain install nightly --profile minimal --component rust-src >/dev/null 2>&1; then
    echo "deps: installed nightly with rust-src"
  else
    echo "deps: no nightly toolchain with rust-src: the sanitized library build skips as \"nightly\" (ALLOW_SKIP=nightly lets make test pass without it)"
    status=1
  fi
fi
exit "$status"
