#!/bin/sh
# quant_speed.sh REPS FILE... - decode and prefill speed of .duet files and
# llama.cpp GGUFs side by side, alternated (REPS rounds, each file once per
# round, so that the machine's bandwidth swings hit every file alike), with
# each file's ceiling: its bytes per decoded token over the read bandwidth
# measured in the same round (`duet bench --memory`). duet runs with no load
# flags (its default path); llama-bench with its defaults (-t = duet's
# threads). Prints one line per file and round, then the median per file.
#   DUET=build/duet LLAMA_BENCH=.../llama-bench sh bench/quant_speed.sh 3 q4.duet Q4_K_M.gguf
set -e
DUET=${DUET:-build/duet}
LB=${LLAMA_BENCH:-llama-bench}
PP=${PP:-128} TG=${TG:-64}
R=$1; shift
T=$("$DUET" bench --memory --memory-mb 64 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["threads"])')
out=$(mktemp)
for r in $(seq "$R"); do
    bw=$("$DUET" bench --memory --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bandwidth_gbs"])')
    for f in "$@"; do
        case "$f" in
        *.gguf)
            "$LB" -m "$f" -p "$PP" -n "$TG" -t "$T" -r 1 -o json 2>/dev/null | python3 -c '
import json, os, sys
f, bw, r = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rows = json.load(sys.stdin)
pp = [x["avg_ts"] for x in rows if x["n_prompt"] > 0][0]
tg = [x["avg_ts"] for x in rows if x["n_gen"] > 0][0]
b = rows[0]["model_size"]
print("%s round %s decode %.2f tok/s prefill %.1f tok/s  bytes/token %.1f MB  ceiling %.2f tok/s (%.0f%%)  bw %.1f GB/s"
      % (os.path.basename(f), r, tg, pp, b / 1e6, bw * 1e9 / b, 100 * tg * b / (bw * 1e9), bw))' "$f" "$bw" "$r" ;;
        *)
            "$DUET" bench "$f" --prompt-tokens "$PP" --gen-tokens "$TG" --reps 1 --json 2>/dev/null | python3 -c '
import json, os, sys
f, bw, r = sys.argv[1], float(sys.argv[2]), sys.argv[3]
j = json.load(sys.stdin)
b = j["bytes_per_token"]
print("%s round %s decode %.2f tok/s prefill %.1f tok/s  bytes/token %.1f MB  ceiling %.2f tok/s (%.0f%%)  bw %.1f GB/s  load %s"
      % (os.path.basename(f), r, j["decode_tok_s"], j["prefill_tok_s"], b / 1e6, bw * 1e9 / b,
         100 * j["decode_tok_s"] * b / (bw * 1e9), bw, j["load"]))' "$f" "$bw" "$r" ;;
        esac
    done
done | tee "$out"
echo "median per file:"
python3 - "$out" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) round \d+ decode ([\d.]+) tok/s prefill ([\d.]+) tok/s .*\((\d+)%\)", line)
    if m: rows.setdefault(m.group(1), []).append((float(m.group(2)), float(m.group(3)), int(m.group(4))))
for f, v in rows.items():
    print("%-16s decode %.2f tok/s  prefill %.1f tok/s  %d%% of its ceiling" % (
        f, statistics.median(x[0] for x in v), statistics.median(x[1] for x in v), statistics.median(x[2] for x in v)))
PY
rm -f "$out"
