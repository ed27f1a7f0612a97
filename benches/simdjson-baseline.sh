#!/usr/bin/env bash
# The parser core next to simdjson (C++) on the same records, in the same run: the ratio is
# the figure (machines here are noisy, absolute MiB/s are not comparable across runs).
#
#   apt-get install libsimdjson-dev g++      # the baseline only; not needed by trailhose
#   benches/simdjson-baseline.sh [ROUNDS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --quiet --release -p trailhose-core --example parser_core
g++ -O3 -march=native -std=c++17 benches/simdjson-baseline/records.cpp -o "$WORK/simdjson-records" -lsimdjson

for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  # The first round also writes the records for simdjson.
  ndjson=()
  [ "$round" = 1 ] && ndjson=(--ndjson "$WORK")
  "$TARGET/release/examples/parser_core" "${ndjson[@]}" | tee "$WORK/ours.txt"
  "$WORK/simdjson-records" "$WORK/natural.ndjson" "$WORK/8KB.ndjson" "$WORK/64KB.ndjson" | tee "$WORK/simdjson.txt"
  python3 - "$WORK/ours.txt" "$WORK/simdjson.txt" <<'PY'
import re, sys
ours = {}
for l in open(sys.argv[1]):
    p = l.split()
    ours[p[0]] = {"splitter": float(p[2]), "resident": float(p[5])}
base = {}
for l in open(sys.argv[2]):
    m = re.match(r"(\S+)\s+simdjson (DOM parse per record|DOM parse \+ key fields)\s+([\d.]+)", l)
    if m:
        base.setdefault(m.group(1), {})[m.group(2)] = float(m.group(3))
for k in ours:
    o, b = ours[k], base[k]
    print(f"{k:8} trailhose resident / simdjson DOM + key fields = {o['resident'] / b['DOM parse + key fields']:.2f}x"
          f"   splitter / DOM + key fields = {o['splitter'] / b['DOM parse + key fields']:.2f}x"
          f"   resident / DOM per record = {o['resident'] / b['DOM parse per record']:.2f}x")
PY
done
