# shellcheck shell=bash
# tests/preload/lib.sh - sourced by the scripts here. It gives them:
#  - a scratch directory ($work, removed at exit) and the user-space network
#    directory in it ($net, made by the first program that uses it);
#  - the case tally: ok, bad, check, skip, summary (summary's status is the
#    script's: nonzero when a case failed, a disallowed skip included);
#  - need PROG...: a named skip for each program that is not installed;
#  - wait_for: a bounded readiness poll that fails the case at its deadline;
#  - usock_listens / unix_listens / kernel_listens: readiness conditions;
#  - spawn / stop: background processes bounded by timeout(1), ended by id.
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
script=$(basename "$0")
work=$(mktemp -d)
net="$work/net"
declare -A pids=()

# stop NAME: ends a process started by spawn. It is timeout(1), which runs
# its command in a process group of its own and passes our TERM on to that
# group, so the program and any strace or launcher between them end too
# (strace itself ignores TERM; it ends with its tracee). A program still
# there 5 s later is killed (the group: timeout's pid is its id) and the
# case fails: a program that ends on SIGTERM on the kernel must also end so
# under the launcher. (spawn's timeout -k 10 is the backstop for its own
# time running out; its KILL would come after ours.)
stop() {
  local pid=${pids[$1]:-} now end
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  now=${EPOCHREALTIME//[!0-9]/}
  end=$((now + 5000000))
  while alive "$1" && [ "${EPOCHREALTIME//[!0-9]/}" -lt "$end" ]; do sleep 0.05; done
  if alive "$1"; then
    kill -KILL -- "-$pid" 2>/dev/null || true
    bad "$1 did not end within 5 s of SIGTERM (killed)"
  fi
  wait "$pid" 2>/dev/null || true
  unset "pids[$1]"
}
cleanup() {
  local n
  for n in "${!pids[@]}"; do stop "$n"; done
  rm -rf "$work"
}
trap cleanup EXIT
# A TERM (make's timeout) or ^C exits through the EXIT trap too.
trap 'exit 143' TERM
trap 'exit 130' INT

# spawn NAME SECONDS CMD...: CMD in the background, sent TERM after
# SECONDS (and KILL 10 s later if it is still there: status 137);
# its pid (timeout's) in pids[NAME] for stop and for `wait "${pids[NAME]}"`,
# whose status is CMD's (124 when the time ran out). Its input is
# /dev/null (bash's rule for a background command without a redirection of
# its own: one on the spawn call does not count).
spawn() {
  local n=$1 secs=$2
  shift 2
  timeout -k 10 "$secs" "$@" &
  pids[$n]=$!
}
# alive NAME: a spawned process is still running (not ended, not a zombie
# waiting to be reaped, which kill -0 would still find).
alive() {
  local st
  # /proc/PID/stat: "pid (comm) state ...", where comm may hold spaces.
  st=$(sed 's/.*) //' "/proc/${pids[$1]:-0}/stat" 2>/dev/null) && [ -n "$st" ] && [ "${st:0:1}" != Z ]
}
# reap NAME: waits for a spawned process to end by itself; its status.
reap() {
  local rc=0
  wait "${pids[$1]}" || rc=$?
  unset "pids[$1]"
  return "$rc"
}

pass=0 fail=0 skipped=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
# check WHAT DETAIL CMD...: "ok WHAT" when CMD succeeds, else
# "FAIL WHAT: DETAIL" (DETAIL says what was seen instead).
check() {
  local what=$1 detail=$2
  shift 2
  if "$@"; then ok "$what"; else bad "$what: $detail"; fi
}

# not CMD...: CMD fails (for check, which runs its command as words).
not() { ! "$@"; }

# skip NAME REASON (tests/README.md): a check that cannot run here is shown
# and logged, and counts as a failure unless ALLOW_SKIP (space- or
# comma-separated) names NAME or "all".
skip_allowed() {
  local a allowed
  IFS=', ' read -r -a allowed <<< "${ALLOW_SKIP-}"
  for a in "${allowed[@]}"; do
    if [ "$a" = all ] || [ "$a" = "$1" ]; then return 0; fi
  done
  return 1
}
skip() {
  local name=$1 reason=$2
  echo "SKIP $name: $reason"
  if [ -n "${USOCK_SKIP_LOG-}" ]; then
    mkdir -p "$(dirname "$USOCK_SKIP_LOG")"
    echo "${suite:-preload}/$script: $name: $reason" >> "$USOCK_SKIP_LOG"
  fi
  if skip_allowed "$name"; then
    skipped=$((skipped + 1))
  else
    bad "skip not allowed (set ALLOW_SKIP=$name to allow)"
  fi
}
summary() {
  echo "$script: $pass passed, $fail failed, $skipped skipped"
  [ "$fail" = 0 ]
}

# need PROG... [-- WHAT]: true when every PROG is in PATH; otherwise a skip
# named after each missing one (saying WHAT did not run) and false, so a
# section reads `if need redis-server -- "redis"; then ...; fi`.
need() {
  local p progs=() what="" missing=0
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then what=${2-}; break; fi
    progs+=("$1"); shift
  done
  for p in "${progs[@]}"; do
    if ! command -v "$p" >/dev/null 2>&1; then
      skip "$p" "$p not found in PATH${what:+; not run: $what}"
      missing=1
    fi
  done
  return "$missing"
}

# wait_for SECONDS WHAT CMD...: polls CMD until it succeeds; when SECONDS
# pass first, the case fails ("FAIL WHAT: not within SECONDS s") and the
# status is 1, so nothing that depends on the readiness runs on a guess.
wait_for() {
  local secs=$1 what=$2 now end
  shift 2
  now=${EPOCHREALTIME//[!0-9]/}
  end=$((now + secs * 1000000))
  until "$@"; do
    now=${EPOCHREALTIME//[!0-9]/}
    if [ "$now" -ge "$end" ]; then
      bad "$what: not within $secs s"
      return 1
    fi
    sleep 0.05
  done
}

# unix_listens PATH: a kernel AF_UNIX socket bound at PATH is listening
# (flag __SO_ACCEPTCON in /proc/net/unix). A user-space port is such a
# socket, but its file exists from bind(): a client that came between bind
# and listen would be refused, so the file alone is not readiness.
unix_listens() {
  [ -S "$1" ] && awk -v p="$1" '$8 == p && $4 == "00010000" { f = 1 } END { exit !f }' /proc/net/unix
}
# usock_listens tPORT|uPORT: the user-space network $net has a stream
# listener (s when the shm backend carries TCP, the default; t with
# USOCK_SHM=0) or a bound
# datagram port (u) there. A stream port of an SO_REUSEPORT group is a
# directory of member listeners (haproxy sets the option): one listening
# will do.
usock_listens() {
  local n m
  for n in "$1" "s${1#t}"; do
    [ "$n" = "$1" ] || [ "${1#t}" != "$1" ] || continue
    unix_listens "$net/$n" && return 0
    if [ -d "$net/$n" ]; then
      for m in "$net/$n"/*; do unix_listens "$m" && return 0; done
    fi
  done
  return 1
}
# kernel_listens tcp|udp PORT: a kernel socket listens on TCP PORT (state
# 0A) or is bound to UDP PORT (state 07), any address. From /proc/net, not
# ss: a missing ss then costs only the checks that are about ss itself.
kernel_listens() {
  local st=0A f files=()
  [ "$1" = udp ] && st=07
  for f in "/proc/net/$1" "/proc/net/${1}6"; do [ -r "$f" ] && files+=("$f"); done
  awk -v p="$(printf '%04X' "$2")" -v st="$st" \
    'FNR > 1 { split($2, a, ":"); if (a[2] == p && $4 == st) f = 1 } END { exit !f }' \
    "${files[@]}"
}
