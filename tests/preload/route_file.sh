#!/usr/bin/env bash
# Routing rules from a file (bin/usockrun --route-file F): an unmodified nc
# reaches a kernel nc -l server by a rule in F, AF_UNIX stays on the kernel
# (the launcher's defaults follow the file's rules), and a bad or missing
# file stops with a message naming it (and the line) and exit status 2.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cat > "$work/rules" <<'RULES'
# rules for tests/preload/route_file.sh

user udp :5353   # nothing to do with nc
kernel tcp 127.0.0.1:7010
RULES

# 1. nc -> a kernel nc -l, by the file's rule on line 4
(timeout 20 nc -l 127.0.0.1 7010 > "$work/kernel.out") &
sleep 0.5
echo "to the kernel by a file" | timeout 10 bin/usockrun --net "$net" --route-file "$work/rules" -- nc -N 127.0.0.1 7010
wait
grep -q "to the kernel by a file" "$work/kernel.out" && ok "a rule in the file routes nc to a kernel server" || bad "file route"

# 2. the file alone keeps the launcher's defaults after it: AF_UNIX stays on
# the kernel (a kernel nc -lU server is reached)
(timeout 20 nc -lU "$work/u.sock" > "$work/unix.out") &
for _ in $(seq 50); do [ -S "$work/u.sock" ] && break; sleep 0.1; done
echo "over a kernel AF_UNIX socket" | timeout 10 bin/usockrun --net "$net" --route-file "$work/rules" -- nc -N -U "$work/u.sock"
wait
grep -q "over a kernel AF_UNIX socket" "$work/unix.out" && ok "with only a file, AF_UNIX stays on the kernel" || bad "unix default"

# 3. a rule that does not parse: the program stops at its first socket call
printf '# line 1\n\nkernel tcp :7011; kernal 10.0.0.0/8\n' > "$work/bad"
rc=0
echo x | timeout 10 bin/usockrun --net "$net" --route-file "$work/bad" -- nc -N 127.0.0.1 7011 2> "$work/bad.err" || rc=$?
want="libuserspacesock: USOCK_ROUTE_FILE $(readlink -f "$work/bad"): line 3: rule \"kernal 10.0.0.0/8\": \"kernal\" is not an action (kernel or user)"
[ "$rc" = 2 ] && grep -qF "$want" "$work/bad.err" && ok "a bad rule stops nc naming the file, line and rule" || { bad "bad rule (rc $rc)"; cat "$work/bad.err"; }

# 4. a file that does not exist: usockrun fails before starting the program
rc=0
bin/usockrun --net "$net" --route-file "$work/missing" -- sh -c 'echo started' > "$work/missing.out" 2> "$work/missing.err" || rc=$?
[ "$rc" = 2 ] && grep -qF "usockrun: route file '$work/missing': no such file" "$work/missing.err" && ! [ -s "$work/missing.out" ] \
  && ok "a missing file: usockrun exits 2 before the program starts" || { bad "missing file (rc $rc)"; cat "$work/missing.err"; }

summary
