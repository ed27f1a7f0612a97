#!/usr/bin/env bash
# Archive + SQL benchmark: generates EVENTS CloudTrail events, archives them (Parquet, and
# NDJSON.gz for the size comparison), then times GROUP BY queries over the archive next to
# `zcat` of the same corpus (the cost of merely reading it as gzip JSON), in the same run.
#
#   cargo build --release -p trailhose
#   benches/archive-query.sh [EVENTS=10000000] [DIR=/tmp/trailhose-archive-bench]
#   FORMATS=parquet benches/archive-query.sh   # skip the NDJSON.gz archive
set -euo pipefail
EVENTS=${1:-10000000}
DIR=${2:-/tmp/trailhose-archive-bench}
BIN=${TRAILHOSE:-${CARGO_TARGET_DIR:-target}/release/trailhose}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p trailhose ($BIN missing)" >&2; exit 1; }

rm -rf "$DIR" && mkdir -p "$DIR"
secs() { /usr/bin/env python3 -c 'import sys,time; print(f"{time.time():.3f}")'; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

t0=$(secs)
"$BIN" generate --out "$DIR/sample" --events "$EVENTS" --accounts 4 --regions 3 \
  --events-per-file 5000 --gzip-level 1 >/dev/null
t1=$(secs)
echo "generate: $(elapsed "$t0" "$t1") s"

for fmt in ${FORMATS:-parquet ndjson_gz}; do
  cat > "$DIR/$fmt.toml" <<TOML
[source]
type = "dir"
path = "$DIR/sample"
[dead_letter]
path = "$DIR/dlq-$fmt.ndjson"
[[sinks]]
type = "archive"
name = "archive"
location = "$DIR/archive-$fmt"
format = "$fmt"
fsync = false
TOML
  t0=$(secs)
  "$BIN" run --config "$DIR/$fmt.toml" 2>"$DIR/run-$fmt.log" || { cat "$DIR/run-$fmt.log"; exit 1; }
  t1=$(secs)
  echo "archive ($fmt): $(elapsed "$t0" "$t1") s; $(grep -E '^records:' "$DIR/run-$fmt.log")"
done

corpus=$(find "$DIR/sample" -name '*.json.gz' -printf '%s\n' | awk '{s+=$1} END {print s}')
pq=$(find "$DIR/archive-parquet" -name '*.parquet' -printf '%s\n' | awk '{s+=$1} END {print s}')
if [ -d "$DIR/archive-ndjson_gz" ]; then
  nd=$(find "$DIR/archive-ndjson_gz" -name '*.ndjson.gz' -printf '%s\n' | awk '{s+=$1} END {print s}')
  echo "sizes: CloudTrail .json.gz corpus $corpus B; archive Parquet (zstd, incl. the raw record column) $pq B; archive NDJSON.gz $nd B; Parquet/NDJSON.gz = $(python3 -c "print(f'{$pq/$nd:.2f}')")"
else
  echo "sizes: CloudTrail .json.gz corpus $corpus B; archive Parquet (zstd, incl. the raw record column) $pq B; Parquet/corpus = $(python3 -c "print(f'{$pq/$corpus:.2f}')")"
fi

t0=$(secs)
find "$DIR/sample" -name '*.json.gz' -print0 | xargs -0 zcat | wc -c >/dev/null
t1=$(secs)
zc=$(elapsed "$t0" "$t1")
echo "baseline zcat of the corpus: $zc s"

run_query() {
  local sql=$1
  t0=$(secs)
  "$BIN" query --archive "$DIR/archive-parquet" --format csv "$sql" >"$DIR/q.out"
  t1=$(secs)
  local q; q=$(elapsed "$t0" "$t1")
  local scanned
  scanned=$("$BIN" query --archive "$DIR/archive-parquet" --format json "EXPLAIN ANALYZE $sql" \
    | grep -oE 'bytes_scanned=[0-9.]+ ?[KMGT]?B?' | head -1 || true)
  echo "query: $q s ($(python3 -c "print(f'{$zc/$q:.1f}')")x faster than zcat), $scanned, $(($(wc -l <"$DIR/q.out") - 1)) rows: $sql"
}
run_query "SELECT eventsource, count(*) AS n FROM cloudtrail_logs GROUP BY eventsource ORDER BY n DESC"
run_query "SELECT errorcode, count(*) AS n FROM cloudtrail_logs WHERE errorcode IS NOT NULL GROUP BY errorcode ORDER BY n DESC"
run_query "SELECT eventTime, eventName, userIdentity.username FROM cloudtrail_logs WHERE userIdentity.username = 'admin_user' ORDER BY eventTime DESC LIMIT 10"
run_query "SELECT json_extract_scalar(requestparameters, '\$.bucketName') AS bucket, count(*) AS n FROM cloudtrail_logs WHERE eventsource = 's3.amazonaws.com' GROUP BY 1 ORDER BY n DESC LIMIT 5"
