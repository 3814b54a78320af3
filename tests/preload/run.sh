#!/usr/bin/env bash
# Unmodified Debian programs under bin/usockrun, both ends in user space on
# one user-space network (a fresh directory); checks results, and that the
# kernel saw no AF_INET socket (strace) and no listening TCP port (ss).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN="bin/usockrun --net"
work=$(mktemp -d)
net="$work/net"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
st() { strace -f -qq -e trace=socket -o "$work/$1.strace" "${@:2}"; }
no_inet() { ! grep -h 'socket(AF_INET' "$work"/*.strace >/dev/null 2>&1; }

# 1. nc -> nc: 50 MB, checksum equal
head -c 50000000 /dev/urandom > "$work/big.bin"
want=$(sha256sum < "$work/big.bin")
(st ncl timeout 60 $RUN "$net" -- nc -l 127.0.0.1 7000 > "$work/recv.bin") &
sleep 0.5
st nc timeout 60 $RUN "$net" -- nc -N 127.0.0.1 7000 < "$work/big.bin"
wait
[ "$(sha256sum < "$work/recv.bin")" = "$want" ] && ok "nc: 50 MB across, checksum equal" || bad "nc: checksum"

# 2. socat: a UDP exchange
(st socatr timeout 20 $RUN "$net" -- socat -u UDP-RECV:7001,bind=127.0.0.1 OPEN:"$work/udp.out",creat,trunc) &
sleep 0.5
echo "datagram through socat" | st socats timeout 10 $RUN "$net" -- socat -u STDIN UDP-SENDTO:127.0.0.1:7001
sleep 0.5
kill %1 2>/dev/null || true
wait 2>/dev/null || true
grep -q "datagram through socat" "$work/udp.out" && ok "socat: UDP datagram across" || bad "socat: UDP"

# 3. python3 -m http.server and curl: a download with checksum, a 404
mkdir -p "$work/www" && cp "$work/big.bin" "$work/www/"
(cd "$work/www" && st http timeout 60 "$OLDPWD/bin/usockrun" --net "$net" -- python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1) &
for _ in $(seq 50); do [ -S "$net/t8000" ] && break; sleep 0.1; done
code=$(st curl timeout 30 $RUN "$net" -- curl -s -o "$work/dl.bin" -w '%{http_code}' http://127.0.0.1:8000/big.bin || true)
[ "$code" = 200 ] && [ "$(sha256sum < "$work/dl.bin")" = "$want" ] && ok "curl <- http.server: 50 MB, checksum equal" || bad "curl download ($code)"
code=$(st curl404 timeout 30 $RUN "$net" -- curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/missing || true)
[ "$code" = 404 ] && ok "curl <- http.server: 404" || bad "curl 404 ($code)"
# the kernel has no listening TCP port of theirs while the server runs
if ss -ltn | grep -q ':8000 '; then bad "ss shows port 8000"; else ok "ss -ltn: no port 8000 on the kernel"; fi
kill %1 2>/dev/null || true
wait 2>/dev/null || true

# 4. one program reaching a kernel server outside user space by a rule
(timeout 20 nc -l 127.0.0.1 7002 > "$work/kernel.out") &
sleep 0.5
echo "to the kernel" | timeout 10 bin/usockrun --net "$net" --route "kernel 127.0.0.1:7002" -- nc -N 127.0.0.1 7002
wait
grep -q "to the kernel" "$work/kernel.out" && ok "a rule routes one address to a kernel server" || bad "kernel route"

no_inet && ok "strace: no AF_INET socket from the programs under usockrun" || bad "strace saw an AF_INET socket"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
