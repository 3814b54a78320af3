#!/usr/bin/env bash
# Routing rules from a file (bin/usockrun --route-file F): an unmodified nc
# reaches a kernel nc -l server by a rule in F, AF_UNIX stays on the kernel
# (the launcher's defaults follow the file's rules), and a bad or missing
# file stops with a message naming it (and the line) and exit status 2.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need nc -- "every case here (nc under the launcher, kernel nc servers)" || { summary; exit; }

cat > "$work/rules" <<'RULES'
# rules for tests/preload/route_file.sh

user udp :5353   # nothing to do with nc
kernel tcp 127.0.0.1:7010
RULES

# 1. nc -> a kernel nc -l, by the file's rule on line 4
spawn kernel-nc 20 nc -l 127.0.0.1 7010 > "$work/kernel.out"
if wait_for 10 "kernel nc -l listening on 7010" kernel_listens tcp 7010; then
  rc=0
  echo "to the kernel by a file" | timeout 10 bin/usockrun --net "$net" --route-file "$work/rules" -- nc -N 127.0.0.1 7010 || rc=$?
  src=0
  reap kernel-nc || src=$?
  check "a rule in the file routes nc to a kernel server" \
    "client exit $rc, server exit $src, server got [$(head -c 100 "$work/kernel.out")]" \
    [ "$rc.$src.$(cat "$work/kernel.out")" = "0.0.to the kernel by a file" ]
fi
stop kernel-nc

# 2. the file alone keeps the launcher's defaults after it: AF_UNIX stays on
# the kernel (a kernel nc -lU server is reached)
spawn kernel-nc-unix 20 nc -lU "$work/u.sock" > "$work/unix.out"
if wait_for 10 "kernel nc -lU listening on $work/u.sock" unix_listens "$work/u.sock"; then
  rc=0
  echo "over a kernel AF_UNIX socket" | timeout 10 bin/usockrun --net "$net" --route-file "$work/rules" -- nc -N -U "$work/u.sock" || rc=$?
  src=0
  reap kernel-nc-unix || src=$?
  check "with only a file, AF_UNIX stays on the kernel (nc -U -> kernel nc -lU)" \
    "client exit $rc, server exit $src, server got [$(head -c 100 "$work/unix.out")]" \
    [ "$rc.$src.$(cat "$work/unix.out")" = "0.0.over a kernel AF_UNIX socket" ]
fi
stop kernel-nc-unix

# 3. a rule that does not parse: the program stops at its first socket call
printf '# line 1\n\nkernel tcp :7011; kernal 10.0.0.0/8\n' > "$work/bad"
rc=0
echo x | timeout 10 bin/usockrun --net "$net" --route-file "$work/bad" -- nc -N 127.0.0.1 7011 2> "$work/bad.err" || rc=$?
want="libuserspacesock: USOCK_ROUTE_FILE $(readlink -f "$work/bad"): line 3: rule \"kernal 10.0.0.0/8\": \"kernal\" is not an action (kernel or user)"
if [ "$rc" = 2 ] && grep -qF "$want" "$work/bad.err"; then
  ok "a bad rule stops nc naming the file, line and rule (exit 2)"
else
  bad "a bad rule: exit $rc (want 2), stderr: $(head -c 500 "$work/bad.err")"
fi

# 4. a file that does not exist: usockrun fails before starting the program
rc=0
bin/usockrun --net "$net" --route-file "$work/missing" -- sh -c 'echo started' > "$work/missing.out" 2> "$work/missing.err" || rc=$?
if [ "$rc" = 2 ] && grep -qF "usockrun: route file '$work/missing': no such file" "$work/missing.err" && ! [ -s "$work/missing.out" ]; then
  ok "a missing file: usockrun exits 2 before the program starts"
else
  bad "a missing file: exit $rc (want 2), stdout [$(head -c 100 "$work/missing.out")], stderr: $(head -c 500 "$work/missing.err")"
fi

summary
