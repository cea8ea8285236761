#!/usr/bin/env bash
# Time .tflite flatbuffers on an Android phone with LCE's lce_benchmark_model, over adb.
#
# usage: android_demo/benchmark.sh [-b BENCHMARK_BINARY] [-t "1 4"] [-r RUNS] [-x] MODEL.tflite...
#   -b  LCE's benchmark tool for Android arm64 (default: $LCE_BENCHMARK_MODEL, else
#       ./lce_benchmark_model_android_arm64 — a file attached to LCE's GitHub releases, or
#       `bazelisk build -c opt --config=android_arm64 //larq_compute_engine/tflite/benchmark:lce_benchmark_model`)
#   -t  thread counts (default "1 4")        -r  timed runs per measurement (default 50)
#   -x  enable XNNPACK (default off, as the app runs LCE models)
# One phone at a time: pick it with ANDROID_SERIAL=<serial> if several are connected.
# Needs adb (Android platform-tools) and USB debugging; prints one table row per model × threads.
set -euo pipefail

ADB="${ADB:-adb}"
binary="${LCE_BENCHMARK_MODEL:-./lce_benchmark_model_android_arm64}"
threads="1 4"
runs=50
xnnpack=false
remote=/data/local/tmp/kbnn_benchmark

usage() { sed -n '4,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "benchmark.sh: $*" >&2; exit 1; }

while getopts "b:t:r:xh" opt; do
    case "$opt" in
        b) binary="$OPTARG" ;;
        t) threads="$OPTARG" ;;
        r) runs="$OPTARG" ;;
        x) xnnpack=true ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ "$#" -ge 1 ] || usage
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "-r needs a positive integer, got '$runs'"
for t in $threads; do
    [[ "$t" =~ ^[1-9][0-9]*$ ]] || die "-t needs positive thread counts, got '$threads'"
done
for model in "$@"; do
    [ -f "$model" ] || die "model file '$model' not found"
    [[ "$(basename "$model")" =~ ^[A-Za-z0-9._-]+$ ]] || die "rename '$model': use letters, digits, '.', '_', '-' only"
done
command -v "$ADB" >/dev/null || die "adb not found; install Android platform-tools or set ADB=/path/to/adb"
[ -f "$binary" ] || die "benchmark binary '$binary' not found; download lce_benchmark_model_android_arm64 from LCE's releases or build it (see android_demo/README.md), then pass -b PATH"

state="$("$ADB" get-state 2>/dev/null || true)"
[ "$state" = "device" ] || die "no phone ready (adb get-state: '${state:-none}'); connect one with USB debugging on"
abi="$("$ADB" shell getprop ro.product.cpu.abi | tr -d '\r')"
[ "$abi" = "arm64-v8a" ] || die "the phone's ABI is '$abi'; lce_benchmark_model_android_arm64 needs arm64-v8a"

"$ADB" shell mkdir -p "$remote" >/dev/null
"$ADB" push "$binary" "$remote/lce_benchmark_model" >/dev/null
"$ADB" shell chmod 755 "$remote/lce_benchmark_model"

# "count=50 first=.. curr=.. min=.. max=.. avg=.. std=.. [p5=.. median=.. p95=..]": the last such
# line is the timed run (the one before it is the warm-up). Values are microseconds.
field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
ms() { if [ -n "$1" ]; then awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; else printf -- "-"; fi; }
size() { awk -v b="$1" 'BEGIN { if (b < 1048576) printf "%.1f KiB", b / 1024; else printf "%.2f MiB", b / 1048576 }'; }

rows=()
for model in "$@"; do
    name="$(basename "$model")"
    bytes="$(wc -c < "$model" | tr -d ' ')"
    "$ADB" push "$model" "$remote/$name" >/dev/null
    for t in $threads; do
        cmd="$remote/lce_benchmark_model --graph=$remote/$name --num_threads=$t --num_runs=$runs --warmup_runs=5 --use_xnnpack=$xnnpack"
        if ! out="$("$ADB" shell "$cmd" 2>&1)"; then
            printf '%s\n' "$out" | tail -n 20 >&2
            die "lce_benchmark_model failed on $name with $t thread(s)"
        fi
        out="$(printf '%s\n' "$out" | tr -d '\r')"
        stats="$(printf '%s\n' "$out" | grep 'count=' | tail -n 1 || true)"
        avg="$(printf '%s\n' "$out" | sed -n 's/.*Inference (avg): \([0-9.eE+-]*\).*/\1/p' | tail -n 1)"
        [ -n "$avg" ] || avg="$(field "$stats" avg)"
        [ -n "$avg" ] || { printf '%s\n' "$out" | tail -n 20 >&2; die "no timings in the output for $name"; }
        rows+=("$(printf '%-32s %10s %7s %9s %9s %9s %9s' "$name" "$(size "$bytes")" "$t" \
            "$(ms "$avg")" "$(ms "$(field "$stats" median)")" "$(ms "$(field "$stats" p95)")" \
            "$(ms "$(field "$stats" min)")")")
    done
done
"$ADB" shell rm -r "$remote" >/dev/null 2>&1 || true

echo "device: $("$ADB" shell getprop ro.product.model | tr -d '\r') ($abi), XNNPACK $xnnpack, $runs runs"
printf '%-32s %10s %7s %9s %9s %9s %9s\n' model size threads "avg ms" "median ms" "p95 ms" "min ms"
printf '%s\n' "${rows[@]}"
