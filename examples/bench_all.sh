#!/usr/bin/env bash
# Runs examples/bench_ceilings.rs three times per backend and prints a markdown table of its
# figures (each run, and the median of the three) to paste into docs/benchmarks.md.
#
#   examples/bench_all.sh                      # SQLite and PostgreSQL (postgres://postgres@127.0.0.1:5432/postgres)
#   PFORTE_BENCH_POSTGRES_URL=postgres://... examples/bench_all.sh
#   PFORTE_BENCH_BACKENDS=sqlite PFORTE_BENCH_RUNS=1 examples/bench_all.sh -- --requests 500
#
# Arguments after `--` go to every run. Run it on a quiet machine: the figures are ratios of rates
# measured side by side, but anything else running skews them.
set -euo pipefail
cd "$(dirname "$0")/.."

postgres_url=${PFORTE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
backends=${PFORTE_BENCH_BACKENDS:-sqlite postgres}
runs=${PFORTE_BENCH_RUNS:-3}
extra=()
if [[ ${1:-} == "--" ]]; then
    shift
    extra=("$@")
fi

cargo build --release --locked --example bench_ceilings >&2
binary=target/release/examples/bench_ceilings
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for backend in $backends; do
    for run in $(seq 1 "$runs"); do
        echo "== $backend, run $run of $runs ==" >&2
        "$binary" --backend "$backend" --postgres-url "$postgres_url" "${extra[@]}" | tee "$out/$backend.$run.log" >&2
        grep -P '^figure\t' "$out/$backend.$run.log" | cut -f2,3 >"$out/$backend.$run.tsv"
    done
done

echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)"
echo
header="| backend | figure |"
rule="| --- | --- |"
for run in $(seq 1 "$runs"); do
    header="$header run $run |"
    rule="$rule ---: |"
done
echo "$header median |"
echo "$rule ---: |"
for backend in $backends; do
    # Figure names in the order the first run printed them.
    cut -f1 "$out/$backend.1.tsv" | while read -r name; do
        values=()
        for run in $(seq 1 "$runs"); do
            values+=("$(awk -F'\t' -v n="$name" '$1 == n { print $2 }' "$out/$backend.$run.tsv")")
        done
        median=$(printf '%s\n' "${values[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
        row="| $backend | $name |"
        for value in "${values[@]}"; do
            row="$row $value |"
        done
        echo "$row $median |"
    done
done
