#!/usr/bin/env bash
# CPython's own socket tests as a third-party conformance suite: modules of
# the standard library's test package (Debian's libpython3.X-testsuite)
# that exercise sockets, select/poll/epoll and the protocols on top, run
# with Debian's python3 on the kernel and under bin/usockrun (every socket
# of the interpreter on one user-space network: TCP through shm, UDP and
# AF_UNIX through xproc). A case fails here when the kernel passes it and
# the library does not (`... ok` on the kernel, `FAIL`/`ERROR` or no result
# under the launcher); a case the kernel does not pass is reported and not
# counted. Each module's run is bounded (regrtest's --timeout dumps the
# threads' stacks of a hung case).
#
# The modules: test_socket (712 cases; VSOCK left out, which a VM without
# vsock hangs on the kernel too), test_selectors, test_select, test_epoll,
# asyncio's low-level socket calls, event loops, servers, streams and
# sendfile, TLS (ssl, asyncio's ssl), and http.client, urllib over a local
# server, ftplib, smtplib, poplib, telnetlib and wsgiref. MODULES="..."
# picks others; PY_LIB=PATH runs another build of the library (the
# launcher's --lib), to see a change's cases fail before it.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

[ -f target/release/libuserspacesock.so ] || { echo "build the library first (cargo build --release)"; exit 2; }

py=/usr/bin/python3
if ! "$py" -c 'import test.test_socket' 2>/dev/null; then
  skip testsuite "CPython's test package (Debian: libpython3.X-testsuite)"
  summary
  exit
fi

MODULES=${MODULES:-"test_socket test_selectors test_select test_epoll
  test_asyncio.test_sock_lowlevel test_asyncio.test_events test_asyncio.test_server
  test_asyncio.test_streams test_asyncio.test_sendfile test_asyncio.test_ssl
  test_ssl test_httplib test_urllib2_localnet test_ftplib test_smtplib
  test_poplib test_telnetlib test_wsgiref"}

# results XML: "RESULT NAME" per case of a regrtest --junit-xml file (ok,
# FAIL, ERROR, skipped), NAME the dotted test id; nothing when the run
# left no file (it hung and was killed). The verbose log is for the eye
# only: its lines interleave with the output of the tests' server threads.
results() {
  [ -s "$1" ] || return 0
  "$py" - "$1" <<'PY' | sort -k2 -u
import sys, xml.etree.ElementTree as ET
for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    kids = {c.tag for c in tc}
    if "failure" in kids:
        r = "FAIL"
    elif "error" in kids:
        r = "ERROR"
    elif "skipped" in kids or tc.get("status") != "run":
        r = "skipped"
    else:
        r = "ok"
    print(r, tc.get("name"))
PY
}

for m in $MODULES; do
  for side in kernel usock; do
    W=()
    [ "$side" = usock ] && W=("$PWD/bin/usockrun" ${PY_LIB:+--lib "$PY_LIB"} --)
    rm -f "$work/$m.$side.xml"
    (cd "$work" && timeout -k 5 600 "${W[@]}" "$py" -m test "$m" -v --timeout 120 -i '*VSOCK*' \
      --junit-xml "$work/$m.$side.xml") > "$work/$m.$side" 2>&1
    results "$work/$m.$side.xml" > "$work/$m.$side.r"
  done
  kn=$(grep -c '^ok ' "$work/$m.kernel.r")
  check "$m: the kernel passes cases of it" "$(tail -n 3 "$work/$m.kernel")" [ "$kn" -gt 0 ]
  failed=0
  while read -r kres name; do
    [ "$kres" = ok ] || continue
    ures=$(awk -v n="$name" '$2 == n { print $1 }' "$work/$m.usock.r")
    if [ "$ures" != ok ]; then
      failed=$((failed + 1))
      echo "# $name: the kernel: ok, the library: ${ures:-no result}"
      grep -A12 -F -e "FAIL: ${name##*.} (" -e "ERROR: ${name##*.} (" "$work/$m.usock" | head -n 14 | sed 's/^/#   /'
    fi
  done < "$work/$m.kernel.r"
  check "$m: the library passes the $kn cases the kernel passes" \
    "$failed of them failed or did not run: $(tail -n 2 "$work/$m.usock" | tr '\n' ' ')" [ "$failed" = 0 ]
done
summary
