#!/bin/sh
# device.sh - runs train.py on a GPU machine and packs what it wrote into
# $OUT (demo.tar.gz, fixtures.tar.gz, eval.tar.gz, train.log, metrics.json),
# also when training stopped on an error.
#   OUT=DIR sh train/device.sh CORPUS.jsonl.xz [train.py options]
D=$(cd "$(dirname "$0")" && pwd)
C=$1; shift
W=${TMPDIR:-/tmp}/duet-train
rm -rf "$W"; mkdir -p "$W" "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
PYTHONUNBUFFERED=1 python3 "$D/train.py" --corpus "$C" --out "$W" "$@"
rc=$?
cd "$W" || exit 1
[ -d demo ] && tar czf "$OUT/demo.tar.gz" demo
[ -d fixtures ] && tar czf "$OUT/fixtures.tar.gz" fixtures
[ -d eval ] && tar czf "$OUT/eval.tar.gz" eval calib.jsonl
cp train.log metrics.json "$OUT/" 2>/dev/null
ls -la "$OUT"
exit $rc
