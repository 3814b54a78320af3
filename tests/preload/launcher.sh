#!/usr/bin/env bash
# tests/preload/launcher.sh - bin/usockrun checks before it runs (issues 16, 17):
# each usage error and each unusable network directory ends with its
# message and exit status 2 before the program starts; a program that is
# not found is 127, one that cannot be executed 126 (as env(1)); a
# statically linked or Go program runs, with a warning that its sockets
# escape the library; a relative --net reaches the program as an absolute
# path; --help shows a server and a client on one network.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
run=$PWD/bin/usockrun

# expect WHAT STATUS MESSAGE ARGS...: usockrun ARGS exits with STATUS and its
# stderr holds MESSAGE (a fixed string); the program (a marker file's touch)
# must not have run unless STATUS is 0.
expect() {
  local what=$1 want=$2 msg=$3 rc=0 err
  shift 3
  rm -f "$work/ran"
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  if [ "$rc" != "$want" ]; then
    bad "$what: exit $rc, expected $want; stderr: $err"
  elif ! grep -qF -- "$msg" <<< "$err"; then
    bad "$what: stderr lacks [$msg]: [$err]"
  elif [ "$want" != 0 ] && [ -e "$work/ran" ]; then
    bad "$what: the program ran"
  else
    ok "$what (exit $rc)"
  fi
}
mark=(touch "$work/ran")

# Usage errors: exit 2, before the program.
expect "unknown option" 2 "usockrun: unknown option --nett" "$run" --nett x -- "${mark[@]}"
expect "--route without rules" 2 "usockrun: --route needs a value" "$run" --route
expect "--route \"\"" 2 "usockrun: --route needs rules" "$run" --route "" -- "${mark[@]}"
expect "--net without a directory" 2 "usockrun: --net needs a value" "$run" --net
expect "--net \"\"" 2 "usockrun: --net needs a directory" "$run" --net "" -- "${mark[@]}"
expect "no program" 2 "usockrun: no program to run" "$run" --net "$net"
expect "a missing --route-file" 2 "usockrun: route file '$work/none': no such file" \
  "$run" --route-file "$work/none" -- "${mark[@]}"
expect "--lib that does not exist" 2 "usockrun: libuserspacesock.so not found" \
  "$run" --lib "$work/none.so" -- "${mark[@]}"

# The engine's device and addresses (issue 17): malformed values stop
# before the program, exit 2, naming the value.
expect "--netif without tap: or packet:" 2 "usockrun: --netif 'ut0': expected tap:NAME or packet:IFNAME" \
  "$run" --netif ut0 -- "${mark[@]}"
expect "--netif tap: with a name over 15 characters" 2 "is not an interface name" \
  "$run" --netif tap:abcdefghijklmnop -- "${mark[@]}"
expect "--netif without a value" 2 "usockrun: --netif needs a value" "$run" --netif
expect "--addr without a prefix length" 2 "usockrun: --addr '10.77.0.2': no prefix length" \
  "$run" --netif tap:ut0 --addr 10.77.0.2 -- "${mark[@]}"
expect "--addr with an IPv4 prefix over 32" 2 "usockrun: --addr '10.77.0.2/33': an IPv4 prefix length is at most 32" \
  "$run" --netif tap:ut0 --addr 10.77.0.2/33 -- "${mark[@]}"
expect "--addr with an IPv6 prefix over 128" 2 "usockrun: --addr 'fd77::2/129': an IPv6 prefix length is at most 128" \
  "$run" --netif tap:ut0 --addr 10.77.0.2/24,fd77::2/129 -- "${mark[@]}"
expect "--addr with an octet over 255" 2 "usockrun: --addr '10.77.0.256/24': '10.77.0.256' is not an IPv4 or IPv6 address" \
  "$run" --netif tap:ut0 --addr 10.77.0.256/24 -- "${mark[@]}"
expect "--addr with two '::'" 2 "usockrun: --addr 'fd77::1::2/64': 'fd77::1::2' is not an IPv4 or IPv6 address" \
  "$run" --netif tap:ut0 --addr fd77::1::2/64 -- "${mark[@]}"
expect "--addr with a loopback address" 2 "usockrun: --addr '127.0.0.2/8': not a unicast address an interface can have" \
  "$run" --netif tap:ut0 --addr 127.0.0.2/8 -- "${mark[@]}"
expect "--gw of a family --addr lacks" 2 "usockrun: --gw 'fd77::1': no IPv6 address in --addr" \
  "$run" --netif tap:ut0 --addr 10.77.0.2/24 --gw 10.77.0.1,fd77::1 -- "${mark[@]}"
expect "--addr \"\"" 2 "usockrun: --addr needs one or more CIDRs" \
  "$run" --netif tap:ut0 --addr "" -- "${mark[@]}"
expect "--gw with a prefix length" 2 "usockrun: --gw '10.77.0.1/24': not an IPv4 or IPv6 address" \
  "$run" --netif tap:ut0 --gw 10.77.0.1/24 -- "${mark[@]}"
expect "--gw with two IPv4 gateways" 2 "usockrun: --gw '10.77.0.1,10.77.0.3': more than one IPv4 gateway" \
  "$run" --netif tap:ut0 --gw 10.77.0.1,10.77.0.3 -- "${mark[@]}"
expect "--mac with five bytes" 2 "usockrun: --mac '02:00:00:00:01': expected six hex bytes" \
  "$run" --netif tap:ut0 --mac 02:00:00:00:01 -- "${mark[@]}"
expect "--mac multicast" 2 "usockrun: --mac '01:00:5e:00:00:01': a multicast address" \
  "$run" --netif tap:ut0 --mac 01:00:5e:00:00:01 -- "${mark[@]}"
expect "--addr without --netif" 2 "usockrun: --addr needs --netif" \
  "$run" --addr 10.77.0.2/24 -- "${mark[@]}"
expect "--mac without --netif" 2 "usockrun: --mac needs --netif" \
  "$run" --mac 02:00:00:00:00:01 -- "${mark[@]}"
# shellcheck disable=SC2016  # expanded by the program's shell
show_netif='printf %s "${USOCK_NETIF-unset}|${USOCK_NETIF_ADDR-unset}|${USOCK_NETIF_GW-unset}|${USOCK_NETIF_MAC-unset}"'
out=$("$run" --net "$net" --netif tap:ut0 --addr 10.77.0.2/24,fd77::2/64 --gw 10.77.0.1,fd77::1 \
  --mac 02:00:00:77:00:02 -- sh -c "$show_netif" 2>&1)
check "--netif, --addr, --gw and --mac reach the program as USOCK_NETIF*" "[$out]" \
  [ "$out" = "tap:ut0|10.77.0.2/24,fd77::2/64|10.77.0.1,fd77::1|02:00:00:77:00:02" ]
out=$(USOCK_NETIF_GW=10.9.9.9 USOCK_NETIF_MAC=02:00:00:00:00:09 \
  "$run" --net "$net" --netif=packet:eth0 --addr=10.77.0.2/24 -- sh -c "$show_netif" 2>&1)
check "--netif without --gw and --mac drops those of the environment" "[$out]" \
  [ "$out" = "packet:eth0|10.77.0.2/24|unset|unset" ]
out=$("$run" --net "$net" -- sh -c "$show_netif" 2>&1)
check "without --netif no USOCK_NETIF* is set" "[$out]" [ "$out" = "unset|unset|unset|unset" ]

# The network directory.
expect "--net whose parent is missing" 2 \
  "usockrun: network directory '$work/no/net': its parent '$work/no' does not exist" \
  "$run" --net "$work/no/net" -- "${mark[@]}"
: > "$work/file"
expect "--net that is a file" 2 "usockrun: network directory '$work/file': exists and is not a directory" \
  "$run" --net "$work/file" -- "${mark[@]}"
expect "--net made when missing" 0 "" "$run" --net "$work/made" -- "${mark[@]}"
check "--net made when missing: a directory of mode 700" "$(stat -c %a "$work/made" 2>&1)" \
  [ "$(stat -c %a "$work/made" 2>/dev/null)" = 700 ]
mkdir -p "$work/rel/sub"
out=$(cd "$work/rel" && "$run" --net sub -- sh -c 'cd / && printf %s "$USOCK_NET"' 2>&1)
check "a relative --net reaches the program as an absolute path" "USOCK_NET=[$out]" \
  [ "$out" = "$work/rel/sub" ]
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  chmod 755 "$work"
  as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  mkdir -p "$work/rootnet" && chmod 700 "$work/rootnet"
  expect "--net of another user" 2 \
    "usockrun: network directory '$work/rootnet': belongs to uid 0, and this user (uid 65534) may not write in it" \
    "${as_nobody[@]}" "$run" --net "$work/rootnet" -- true
  mkdir -p "$work/ro" && chmod 755 "$work/ro"
  expect "--net in a directory this user cannot write" 2 \
    "usockrun: network directory '$work/ro/net': cannot be created: this user may not write in '$work/ro'" \
    "${as_nobody[@]}" "$run" --net "$work/ro/net" -- true
  mkdir -p "$work/mine" && chown 65534:65534 "$work/mine" && chmod 500 "$work/mine"
  expect "--net of this user without write permission" 2 \
    "usockrun: network directory '$work/mine': not writable and searchable by this user (mode 500)" \
    "${as_nobody[@]}" "$run" --net "$work/mine" -- true
else
  skip root "the other-user cases of the network directory need root and setpriv"
fi

# The program.
expect "a program not found" 127 "usockrun: no-such-program-here: command not found" \
  "$run" --net "$net" -- no-such-program-here
expect "a path that does not exist" 127 "usockrun: $work/none: no such file" \
  "$run" --net "$net" -- "$work/none"
expect "a directory" 126 "usockrun: $work: is a directory" "$run" --net "$net" -- "$work"
printf '#!/bin/sh\n' > "$work/noexec"
expect "a file without execute permission" 126 "usockrun: $work/noexec: not executable" \
  "$run" --net "$net" -- "$work/noexec"
expect "a program's own exit status" 3 "" "$run" --net "$net" -- sh -c 'exit 3'
err=$("$run" --net "$net" -- true 2>&1)
check "a dynamically linked program: no warning" "stderr: [$err]" [ -z "$err" ]

if command -v cc >/dev/null; then
  printf '#include <unistd.h>\nint main(void) { return write(1, "static\\n", 7) != 7; }\n' > "$work/st.c"
  if cc -static -o "$work/static" "$work/st.c" 2>"$work/cc.err"; then
    expect "a statically linked program: runs, with a warning" 0 \
      "usockrun: warning: $work/static is statically linked" "$run" --net "$net" -- "$work/static"
  else
    skip static-libc "cc -static failed: $(head -c 200 "$work/cc.err")"
  fi
else
  skip cc "no C compiler for the static program"
fi
# A Go binary is told by the build-info marker the Go linker writes; a
# dynamically linked program carrying that marker stands in for one (no Go
# toolchain needed), and must still run.
cp "$(type -P true)" "$work/gostub"
printf '\377 Go buildinf:\010\002' >> "$work/gostub"
expect "a Go program: runs, with a warning" 0 "usockrun: warning: $work/gostub is a Go program" \
  "$run" --net "$net" -- "$work/gostub"

# Installed (make install): the launcher finds the library beside it in
# ../lib, and both man pages render without a warning.
if make -s install DESTDIR="$work/inst" PREFIX=/usr/local >"$work/install.log" 2>&1; then
  inst=$work/inst/usr/local
  out=$("$inst/bin/usockrun" --net "$net" -- sh -c 'printf %s "$LD_PRELOAD"' 2>&1)
  check "the installed usockrun preloads the installed library" "LD_PRELOAD=[$out]" \
    [ "$out" = "$(readlink -f "$inst/lib/libuserspacesock.so")" ]
  page_ok() {
    [ -z "$warn" ] && grep -qx 'ENVIRONMENT' <<< "$text" && grep -qx 'SEE ALSO' <<< "$text"
  }
  if command -v man >/dev/null; then
    for page in man1/usockrun.1 man7/libuserspacesock.7; do
      f=$inst/share/man/$page
      warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null)
      text=$(MANWIDTH=80 man -l "$f" 2>/dev/null)
      check "man -l $page renders without warnings, with its sections" \
        "warnings [$warn], $(wc -l <<< "$text") lines" page_ok
    done
  else
    skip man "man is not installed (package man-db)"
  fi
else
  bad "make install DESTDIR=$work/inst: $(tail -n 3 "$work/install.log")"
fi

help=$("$run" --help)
check "--help shows a server and a client on one network" "$(head -c 300 <<< "$help")" \
  grep -q "usockrun --net /tmp/demo -- curl" <<< "$help"
summary
