#!/usr/bin/env bash
# Run the whole suite N times, each time on a fresh clone of this repository's HEAD (committed work only), the
# way CI does: `make test` in a clean checkout with ../shared beside it. Stops at the first failing run and
# keeps its clone for inspection; prints a pass count at the end.
#
#   scripts/repeat-suite.sh [N]      (default 5; also `make test-repeat N=5`)
set -uo pipefail
runs="${1:-5}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="$(cd "$repo/.." && pwd)/shared"
work="$(mktemp -d -t lookalike-repeat-XXXXXX)"
[ -d "$shared" ] && ln -s "$shared" "$work/shared"
passed=0
for i in $(seq 1 "$runs"); do
    clone="$work/run-$i"
    git clone --quiet "$repo" "$clone"
    echo "== run $i of $runs: $clone ($(git -C "$clone" rev-parse --short HEAD))"
    start=$(date +%s)
    if (cd "$clone" && CI=true make test > "$work/run-$i.log" 2>&1); then
        passed=$((passed + 1))
        echo "   passed in $(( $(date +%s) - start )) s: $(grep -E '^=+ .* in [0-9.]+s' "$work/run-$i.log" | tail -1)"
        rm -rf "$clone"
    else
        echo "   FAILED after $(( $(date +%s) - start )) s; log: $work/run-$i.log"
        tail -40 "$work/run-$i.log"
        echo "$passed passed, 1 failed (of $i run)"
        exit 1
    fi
done
echo "$passed passed, 0 failed"
