#!/usr/bin/env bash
# usockstat (bin/usockstat, man/usockstat.1) lists a user-space network while
# its programs run, and leaves them undisturbed. Real servers under
# bin/usockrun --route "user unix": a TCP listener (backlog 7), a UDP
# receiver, an AF_UNIX listener, and a TCP connection between two socats
# whose server accepted and then blocks opening a FIFO, so that what the
# client sends waits unread in the server's receive queue: its Recv-Q is
# known to the byte. Checked from --json (parsed with python3) and from the
# text: the listeners, both ends of the connection with matching addresses,
# pids and program names, the queue, -l/-a/-t/-u/-x filtering; then the
# programs carry more data (it arrives); a stopped process is named on
# stderr within the timeout and the others are still listed; a killed
# process's endpoint file is passed over and left in place; the usage
# errors exit 2 with their reason; the installed tool and its man page.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need socat python3 -- "the listing" || { summary; exit; }

stat=bin/usockstat
RUN=(bin/usockrun --net "$net" --route "user unix" --)
# The program's own pid under spawn: timeout's child (usockrun execs it).
prog_pid() { ps -o pid= --ppid "${pids[$1]}" | tr -d ' ' | head -n 1; }
# q FILE EXPR: EXPR evaluated by python3 over the JSON array in FILE (as
# `d`), printed.
q() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# list ARGS...: usockstat --json ARGS into $work/l.json (stderr: l.err).
list() { "$stat" --net "$net" --json "$@" > "$work/l.json" 2> "$work/l.err"; }
# is EXPECTED WHAT EXPR: the value of EXPR over $work/l.json is EXPECTED.
is() {
  local want=$1 what=$2 got
  got=$(q "$work/l.json" "$3" 2>&1) || true
  check "$what" "expected [$want], got [$got]" [ "$got" = "$want" ]
}

# Installed (make install): beside usockrun, with its man page. The
# library is built (make test-preload builds it first): CARGO=: so that no
# cargo runs here, which could wait long for another cargo's lock.
inst=
if make -s install CARGO=: DESTDIR="$work/inst" PREFIX=/usr/local >"$work/install.log" 2>&1; then
  inst=$work/inst/usr/local
  if command -v man >/dev/null; then
    f=$inst/share/man/man1/usockstat.1
    warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null)
    text=$(MANWIDTH=80 man -l "$f" 2>/dev/null)
    page_ok() {
      [ -z "$warn" ] && grep -qx 'ENVIRONMENT' <<< "$text" && grep -qx 'SEE ALSO' <<< "$text" \
        && grep -qx 'EXIT STATUS' <<< "$text"
    }
    check "man -l man1/usockstat.1 renders without warnings, with its sections" \
      "warnings [$warn], $(wc -l <<< "$text") lines" page_ok
  else
    skip man "man is not installed (package man-db)"
  fi
else
  bad "make install DESTDIR=$work/inst: $(tail -n 3 "$work/install.log")"
fi

mkfifo "$work/srv.fifo" "$work/cli.fifo"
spawn listener 100 "${RUN[@]}" socat TCP-LISTEN:8081,reuseaddr,backlog=7 /dev/null
# A listener on two fds (dup): one socket, one line, both fds.
spawn dup 100 "${RUN[@]}" python3 -c '
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 8082))
s.listen(4)
print(s.fileno(), os.dup(s.fileno()), flush=True)
time.sleep(100)' > "$work/dup.fds"
spawn server 100 "${RUN[@]}" socat -u TCP-LISTEN:8080,reuseaddr OPEN:"$work/srv.fifo"
spawn udp 100 "${RUN[@]}" socat -u UDP-RECV:5353 OPEN:"$work/udp.out",creat,append
spawn unix 100 "${RUN[@]}" socat -u UNIX-LISTEN:"$work/u.sock" OPEN:"$work/unix.out",creat,append
ports_up() {
  usock_listens t8080 && usock_listens t8081 && usock_listens t8082 && [ -S "$net/u5353" ] \
    && [ -s "$work/dup.fds" ]
}
wait_for 10 "the TCP and UDP servers are up" ports_up || { summary; exit; }
unix_up() { "$stat" --net "$net" -lx 2>/dev/null | grep -q "$work/u.sock"; }
wait_for 10 "usockstat -lx lists the AF_UNIX listener" unix_up || { summary; exit; }

# The client reads the FIFO we hold open read-write (so no open blocks,
# and its end of file is when we close it) and sends it to the server.
spawn client 100 "${RUN[@]}" socat -u OPEN:"$work/cli.fifo" TCP:127.0.0.1:8080
exec 7<> "$work/cli.fifo"
printf hello >&7
server_q() { list -t && [ "$(q "$work/l.json" '[s["recv_q"] for s in d if s["local"] == "127.0.0.1:8080"]')" = "[$1]" ]; }
wait_for 10 "the server's Recv-Q reaches 5" server_q 5 || { summary; exit; }

lpid=$(prog_pid listener) spid=$(prog_pid server) upid=$(prog_pid udp) ppid=$(prog_pid dup)
read -r fd1 fd2 < "$work/dup.fds"
xpid=$(prog_pid unix) cpid=$(prog_pid client)

# All of it, as JSON.
rc=0; list -a || rc=$?
check "--json -a exits 0 with nothing on stderr" "status $rc, stderr [$(cat "$work/l.err")]" \
  [ "$rc" = 0 -a ! -s "$work/l.err" ]
is "True" "every object has the documented fields" \
  'all(sorted(s) == ["comm", "fds", "local", "netid", "peer", "pid", "recv_q", "send_q", "state"] for s in d) and len(d) > 0'
is "[('LISTEN', 0, 7, '*', $lpid, 'socat')]" "the TCP listener: LISTEN, accept queue 0, backlog 7, its pid and name" \
  '[(s["state"], s["recv_q"], s["send_q"], s["peer"], s["pid"], s["comm"]) for s in d if s["netid"] == "tcp" and s["local"].endswith(":8081")]'
is "[('UNCONN', '0.0.0.0:5353', '*', $upid, 'socat')]" "the UDP receiver: UNCONN at 0.0.0.0:5353, its pid and name" \
  '[(s["state"], s["local"], s["peer"], s["pid"], s["comm"]) for s in d if s["netid"] == "udp"]'
is "[('LISTEN', '$work/u.sock', $xpid, 'socat')]" "the AF_UNIX listener: u_str LISTEN at its path, its pid and name" \
  '[(s["state"], s["local"], s["pid"], s["comm"]) for s in d if s["netid"] == "u_str"]'
is "[('ESTAB', 5, 0, $spid, 'socat')]" "the server's end: ESTAB, the 5 unread bytes, its pid and name" \
  '[(s["state"], s["recv_q"], s["send_q"], s["pid"], s["comm"]) for s in d if s["netid"] == "tcp" and s["local"] == "127.0.0.1:8080"]'
is "[('ESTAB', 0, 0, $cpid, 'socat')]" "the client's end: ESTAB, nothing queued, its pid and name" \
  '[(s["state"], s["recv_q"], s["send_q"], s["pid"], s["comm"]) for s in d if s["netid"] == "tcp" and s["peer"] == "127.0.0.1:8080"]'
is "True" "the two ends name each other (the client's port is the server's peer)" \
  '[(s["local"], s["peer"]) for s in d if s["pid"] == '"$cpid"' and s["netid"] == "tcp"] == [(s["peer"], s["local"]) for s in d if s["pid"] == '"$spid"' and s["netid"] == "tcp"]'
is "True" "every socket has its fds, numbers above 2" 'all(len(s["fds"]) >= 1 and min(s["fds"]) > 2 for s in d)'
is "[('LISTEN', 0, 4, $ppid, 'python3', [$fd1, $fd2])]" "a listener on two fds (dup): one object, both fds" \
  '[(s["state"], s["recv_q"], s["send_q"], s["pid"], s["comm"], s["fds"]) for s in d if s["local"] == "127.0.0.1:8082"]'
is "6" "-a lists the six IP and AF_UNIX stream sockets (3 listeners, 1 datagram, 2 ends)" \
  'len([s for s in d if s["netid"] != "u_dgr"])'
# socat's own socketpair (AF_UNIX datagrams, in user space here): both ends
# connected and unnamed, in each socat.
is "True" "-a also lists socat's socketpairs: u_dgr ESTAB, unnamed, two in each socat" \
  'sorted(set((s["state"], s["local"], s["peer"]) for s in d if s["netid"] == "u_dgr")) == [("ESTAB", "*", "*")] and all(len([s for s in d if s["netid"] == "u_dgr" and s["pid"] == p]) == 2 for p in set(s["pid"] for s in d if s["comm"] == "socat"))'

if [ -n "$inst" ]; then
  out=$("$inst/bin/usockstat" --net "$net" -lt)
  check "the installed usockstat lists the network" "[$out]" grep -q ":8081" <<< "$out"
fi

# Filtering.
list -l; is "[('tcp', 'LISTEN'), ('tcp', 'LISTEN'), ('udp', 'UNCONN'), ('u_str', 'LISTEN')]" "-l: the listening sockets only" \
  '[(s["netid"], s["state"]) for s in d]'
list; is "[('tcp', 'ESTAB'), ('tcp', 'ESTAB')]" "no -l/-a: the connection's ends (ss's default)" \
  '[(s["netid"], s["state"]) for s in d if s["netid"] != "u_dgr"]'
is "['ESTAB']" "no -l/-a: nothing listening or unconnected" 'sorted(set(s["state"] for s in d))'
list -lt; is "['8081', '8082']" "-lt: the TCP listeners only" \
  'sorted(s["local"].rsplit(":", 1)[1] for s in d)'
list -lu; is "['udp']" "-lu: the UDP socket only" '[s["netid"] for s in d]'
list -lx; is "['u_str']" "-lx: the AF_UNIX listener only" '[s["netid"] for s in d]'
list -a -t -u; is "['tcp', 'tcp', 'tcp', 'tcp', 'udp']" "-a -t -u: TCP and UDP, no AF_UNIX" '[s["netid"] for s in d]'
list -ax; is "['u_dgr', 'u_str']" "-ax: AF_UNIX only" 'sorted(set(s["netid"] for s in d))'

# The text, with -p (ss's columns and users:(...)), and -n accepted.
text=$("$stat" --net "$net" -tnp 2>&1)
check "text -tnp: the header" "[$(head -n 1 <<< "$text")]" \
  grep -qE '^Netid +State +Recv-Q +Send-Q +Local Address:Port +Peer Address:Port +Process$' <<< "$text"
check "text -tnp: the server's line with its queue and process" "[$text]" \
  grep -qE "^tcp +ESTAB +5 +0 +127\.0\.0\.1:8080 +127\.0\.0\.1:[0-9]+ +users:\(\(\"socat\",pid=$spid,fd=[0-9]+\)\)$" <<< "$text"
check "text -tnp: two lines besides the header (-t: no u_dgr)" "[$text]" [ "$(wc -l <<< "$text")" = 3 ]
text=$("$stat" --net "$net" -ltp)
check "text -ltp: the listener on two fds, ss's users:(...) with both" "[$text]" \
  grep -qE "^tcp +LISTEN +0 +4 +127\.0\.0\.1:8082 +\* +users:\(\(\"python3\",pid=$ppid,fd=$fd1\),\(\"python3\",pid=$ppid,fd=$fd2\)\)$" <<< "$text"
text=$(USOCK_NET=$net "$stat" -l)
check "text -l, network from USOCK_NET, no -p: no process column" "[$text]" \
  not grep -q "users:\|Process" <<< "$text"
check "text -l: the AF_UNIX listener's path" "[$text]" grep -qE "^u_str +LISTEN +0 +[0-9]+ +$work/u.sock +\*$" <<< "$text"

# A stopped process: named on stderr once the timeout passes; the rest is
# listed, and the process carries on once continued.
kill -STOP "$lpid"
# kill returns before the process stops: wait until every thread of it has.
all_stopped() {
  local t st
  for t in /proc/"$1"/task/*/stat; do
    st=$(sed 's/.*) //' "$t" | cut -c1) || return 1
    [ "$st" = T ] || [ "$st" = t ] || return 1
  done
}
wait_for 5 "the listener stops on SIGSTOP" all_stopped "$lpid"
t0=${EPOCHREALTIME//[!0-9]/}
rc=0; list -a --timeout 500 || rc=$?
ms=$(( (${EPOCHREALTIME//[!0-9]/} - t0) / 1000 ))
kill -CONT "$lpid"
check "a stopped process: exit 0, within 500 ms to 3 s" "status $rc after $ms ms" \
  [ "$rc" = 0 -a "$ms" -ge 450 -a "$ms" -lt 3000 ]
check "a stopped process is named on stderr and skipped" "stderr [$(cat "$work/l.err")]" \
  grep -qx "usockstat: process $lpid (socat) did not answer within 500 ms (stopped or busy); skipped" "$work/l.err"
is "True" "the others are still listed (both ends, the UDP receiver, the AF_UNIX listener)" \
  'sorted((s["netid"], s["pid"]) for s in d if s["netid"] != "u_dgr") == sorted([("tcp", '"$cpid"'), ("tcp", '"$spid"'), ("tcp", '"$ppid"'), ("udp", '"$upid"'), ("u_str", '"$xpid"')])'
list -lt; is "[$lpid]" "continued, the listener answers again" '[s["pid"] for s in d if s["local"].endswith(":8081")]'

# The programs keep working: more data, then the server reads it all.
printf more >&7
wait_for 10 "after the listing the server's Recv-Q grows to 9" server_q 9
# (cat must not hold the client's FIFO open: its end of file is ours.)
cat "$work/srv.fifo" > "$work/srv.out" 7>&- &
catpid=$!
exec 7>&-
st=0; timeout 10 tail --pid="$catpid" -f /dev/null || st=$?
check "the server got every byte after being listed, and closed" "status $st, got [$(cat "$work/srv.out" 2>/dev/null)]" \
  [ "$st" = 0 -a "$(cat "$work/srv.out")" = hellomore ]
"${RUN[@]}" socat -u - UDP:127.0.0.1:5353 <<< ping || bad "socat: a datagram to the UDP receiver"
"${RUN[@]}" socat -u - UNIX-CONNECT:"$work/u.sock" <<< hi || bad "socat: a connection to the AF_UNIX listener"
got_dgram() { grep -qx ping "$work/udp.out" 2>/dev/null; }
wait_for 10 "the UDP receiver got a datagram after being listed" got_dgram && ok "datagram arrives after listing"
got_unix() { grep -qx hi "$work/unix.out" 2>/dev/null; }
wait_for 10 "the AF_UNIX listener took a connection after being listed" got_unix && ok "AF_UNIX data arrives after listing"
gone() { ! alive "$1"; }
wait_for 10 "the client ends after its input's end" gone client
wait_for 10 "the server ends after the client's" gone server
check "the client's endpoint file went with it at exit" "$net/.stat/$cpid is still there" \
  not test -e "$net/.stat/$cpid"

# A killed process leaves its endpoint file: passed over in silence, and
# left where it is.
# (Out of the job table first: bash would report the kill on stderr.)
disown "${pids[udp]}" 2>/dev/null || true
kill -KILL "$upid"
timeout 5 tail --pid="$upid" -f /dev/null || bad "the killed UDP receiver did not end"
unset "pids[udp]"
rc=0; list -a || rc=$?
check "a dead process's endpoint: exit 0, nothing on stderr" "status $rc, stderr [$(cat "$work/l.err")]" \
  [ "$rc" = 0 -a ! -s "$work/l.err" ]
is "[]" "a dead process's sockets are not listed" '[s for s in d if s["pid"] == '"$upid"']'
is "True" "the living ones still are" 'sorted(s["pid"] for s in d if s["netid"] == "tcp") == sorted(['"$lpid, $ppid"'])'
check "usockstat leaves the dead process's endpoint file in place" "$net/.stat/$upid is gone" \
  test -S "$net/.stat/$upid"

# Usage errors: status 2 and the reason.
usage() {
  local what=$1 want=$2 rc=0 err
  shift 2
  err=$("$stat" "$@" 2>&1 >/dev/null) || rc=$?
  said() { [ "$rc" = 2 ] && grep -qF -- "$want" <<< "$err"; }
  check "$what: status 2 and [$want]" "status $rc, stderr [$err]" said
}
usage "an unknown option" "usockstat: unknown option --bogus" --net "$net" --bogus
usage "an unknown short option" "usockstat: unknown option -z" --net "$net" -tz
usage "-l with -a" "usockstat: -l and -a exclude each other" --net "$net" -la
usage "--net without its directory" "usockstat: --net needs an argument" --net
usage "a stray argument" "usockstat: unexpected argument 'x'" --net "$net" x
usage "a bad --timeout" "usockstat: --timeout: not a number" --net "$net" --timeout 5s
usage "a missing directory" "usockstat: $work/none: cannot use the network directory: No such file or directory" \
  --net "$work/none"
touch "$work/file"
usage "a file for a directory" "usockstat: $work/file: not a directory" --net "$work/file"
help=$("$stat" --help)
check "--help: usage and an example, status 0" "[$(head -n 2 <<< "$help")]" \
  grep -q "usockstat --net /tmp/demo -atp" <<< "$help"
mkdir "$work/empty"
out=$("$stat" --net "$work/empty" --json)
check "a network nobody joined yet: an empty JSON array" "[$out]" [ "$out" = "[]" ]

summary
