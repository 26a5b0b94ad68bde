#!/bin/sh
# Usage: run_all.sh [SECONDS] [TARGET...]
# Runs the fuzz targets (default: all) one after another, each for SECONDS (default 600),
# at the lowest CPU priority with one job, and logs libFuzzer's output to
# $WORK/logs/<target>.log. The growing corpus lives in $WORK/corpus/<target>
# (the committed seeds in corpus/<target> are read, never written), crashes
# go to $WORK/artifacts/<target>/. Build first (see README.md).
set -u
SECONDS_EACH=${1:-600}
[ $# -gt 0 ] && shift
TARGETS=${*:-engineio socketio messages rest_bodies}
WORK=${EFFEX_FUZZ_WORK:-/var/tmp/effex-fuzz}
BIN=${CARGO_TARGET_DIR:-$(dirname "$0")/target}/x86_64-unknown-linux-gnu/release
HERE=$(cd "$(dirname "$0")" && pwd)
for target in $TARGETS; do
    mkdir -p "$WORK/corpus/$target" "$WORK/artifacts/$target" "$WORK/logs"
    nice -n 19 "$BIN/$target" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -dict="$HERE/dict/effex.dict" -artifact_prefix="$WORK/artifacts/$target/" \
        "$WORK/corpus/$target" "$HERE/corpus/$target" >"$WORK/logs/$target.log" 2>&1
    echo "$target exit $? at $(date -u +%H:%M:%S)" >>"$WORK/logs/summary.log"
done
