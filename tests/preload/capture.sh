#!/usr/bin/env bash
# tests/preload/capture.sh - usockrun --pcap (USOCK_PCAP, issue 16): a
# server and a client in two processes on one user-space network, both
# writing to one capture file; tcpdump -r reads it, and the TCP stream
# reassembled from it (pcap_read.py) is byte for byte what socat sent each
# way, after a SYN, SYN-ACK, ACK and before each side's FIN; a UDP
# datagram's payload is there once; the kernel carried none of it.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need socat tcpdump python3 -- "the capture cases (socat under the launcher, tcpdump -r)" || { summary; exit; }
here=$(dirname "$0")
cap=$work/cap.pcap
head -c 300000 /dev/urandom > "$work/in"
run=(bin/usockrun --net "$net" --pcap "$cap" --)

# TCP: the server sends a reply file back; the client sends "in".
head -c 7000 /dev/urandom > "$work/reply"
spawn server 30 "${run[@]}" socat -u TCP-LISTEN:7301,reuseaddr OPEN:"$work/out",creat,trunc
if wait_for 10 "socat listening on 7301 (user space)" usock_listens t7301; then
  check "the kernel has no listener on 7301" "a kernel socket listens" not kernel_listens tcp 7301
  rc=0
  timeout 20 "${run[@]}" socat -u OPEN:"$work/in" TCP:127.0.0.1:7301 || rc=$?
  src=0
  reap server || src=$?
  check "socat moved 300 KB through the library (client $rc, server $src)" "sizes $(stat -c %s "$work/out" 2>&1)" \
    cmp -s "$work/in" "$work/out"
fi
stop server

# UDP: one datagram.
spawn udp-server 30 "${run[@]}" socat -u UDP-RECV:7302 OPEN:"$work/udp-out",creat,trunc
sleep 0.5
printf 'one datagram, captured' | timeout 10 "${run[@]}" socat -u - UDP-SENDTO:127.0.0.1:7302
for _ in $(seq 50); do [ -s "$work/udp-out" ] && break; sleep 0.1; done
stop udp-server

lines=$(tcpdump -nn -r "$cap" 2>"$work/tcpdump.err" | wc -l)
check "tcpdump -r reads the capture" "exit/err: $(cat "$work/tcpdump.err")" \
  grep -q "link-type RAW" "$work/tcpdump.err"
check "tcpdump shows packets" "$lines lines" [ "$lines" -gt 10 ]
out=$(python3 "$here/pcap_read.py" "$cap" 7301 2>&1)
want_c2s="c2s $(sha256sum < "$work/in" | cut -d' ' -f1) 300000"
check "the client's bytes reassembled from the capture are what it sent" "$out" grep -qx "$want_c2s" <<< "$out"
check "nothing flowed back" "$out" grep -qx "s2c $(sha256sum < /dev/null | cut -d' ' -f1) 0" <<< "$out"
flags=$(sed -n 's/^flags //p' <<< "$out")
check "the handshake comes first and each side's FIN after it" "flags: $flags" \
  grep -qE '^c2s:S s2c:S\. c2s:\. .*c2s:F\..*' <<< "$flags"
check "the server's FIN is there too" "flags: $flags" grep -q 's2c:F\.' <<< "$flags"
udp=$(python3 "$here/pcap_read.py" "$cap" 7302 | sed -n 's/^udp //p')
want_udp="$(printf 'one datagram, captured' | sha256sum | cut -d' ' -f1) 22 1"
check "the UDP datagram is in the capture once" "udp: $udp" [ "$udp" = "$want_udp" ]
summary
