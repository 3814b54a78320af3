# tests/preload/lib.sh - sourced by the scripts here: a scratch directory
# ($work, removed at exit with any background job), the network directory
# in it ($net, made by the first program), and the case tally (ok, bad,
# summary; summary's status is the script's).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
work=$(mktemp -d)
net="$work/net"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
summary() {
  echo "$pass passed, $fail failed"
  [ "$fail" = 0 ]
}
