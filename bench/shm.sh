#!/usr/bin/env bash
# bench/shm.sh - issue 15's first figure: a 64 B ping-pong between two
# processes over a shared-memory stream connection (examples/shm_pingpong.rs:
# shm::conn's listener, connect, accept and blocking send/recv; futex
# waits, no spinning, no kernel on the data path) against the kernel's
# loopback TCP between two programs (netbench pingpong2's kernel side),
# alternating, RUNS runs of DUR seconds each, medians and ratios, with the
# CPU time of both processes per round trip. LOAD=1: one busy loop per
# core during every run (as bench/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5} DUR=${DUR:-2} LOAD=${LOAD:-0}
cargo build --release --example shm_pingpong >/dev/null 2>&1
mkdir -p bench/build
cc -O2 -Wall -Wextra -Werror -o bench/build/bench-kernel bench/netbench.c -lpthread
busy=()
load_on() { [ "$LOAD" = 1 ] || return 0; for _ in $(seq "$(nproc)"); do sh -c 'while :; do :; done' & busy+=($!); done; }
load_off() { if [ "${#busy[@]}" -gt 0 ]; then kill "${busy[@]}" 2>/dev/null || true; wait "${busy[@]}" 2>/dev/null || true; fi; busy=(); }
trap load_off EXIT
k_rtt=() k_cpu=() s_rtt=() s_cpu=()
port=23101
for r in $(seq "$RUNS"); do
  load_on
  bench/build/bench-kernel -P server -p "$port" -t pingpong >/dev/null &
  srv=$!
  for _ in $(seq 50); do ss -ltn "sport = :$port" | grep -q LISTEN && break; sleep 0.05; done
  out=$(bench/build/bench-kernel -P client -p "$port" -t pingpong -d "$DUR")
  wait "$srv"
  k_rtt+=("$(awk '$1=="pingpong_rtt_us"{print $2}' <<< "$out")")
  k_cpu+=("$(awk '$1=="pingpong_cpu_us"{print $2}' <<< "$out")")
  out=$(target/release/examples/shm_pingpong "$DUR")
  s_rtt+=("$(sed -n 's/.*shm_rtt_us=\([0-9.]*\).*/\1/p' <<< "$out")")
  s_cpu+=("$(sed -n 's/.*shm_cpu_us=\([0-9.]*\).*/\1/p' <<< "$out")")
  load_off
  echo "run $r: kernel rtt ${k_rtt[-1]} us cpu ${k_cpu[-1]} us | shm rtt ${s_rtt[-1]} us cpu ${s_cpu[-1]} us"
  port=$((port + 1))
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
km=$(median "${k_rtt[@]}") kc=$(median "${k_cpu[@]}") sm=$(median "${s_rtt[@]}") sc=$(median "${s_cpu[@]}")
echo "LOAD=$LOAD RUNS=$RUNS DUR=$DUR: 64 B ping-pong between two processes, medians"
echo "  kernel TCP loopback: rtt $km us, cpu $kc us per round trip"
echo "  shm connection:      rtt $sm us, cpu $sc us per round trip"
awk -v a="$sm" -v b="$km" -v c="$sc" -v d="$kc" 'BEGIN{printf "  ratio shm/kernel: rtt %.2f (goal <= 0.5), cpu %.2f\n", a/b, c/d}'
