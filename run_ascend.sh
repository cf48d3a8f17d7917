#!/usr/bin/env bash
# Data-parallel training on Ascend NPUs (Atlas 900) with MindSpore's own launcher, msrun.
#
#   bash run_ascend.sh --config configs/vpmnet_cuhk.yaml --data-root /data --output-dir runs/vpmnet_cuhk
#   bash run_ascend.sh --config ... --nodes 4 --node-rank 0 --master-addr 10.0.0.1     # on every node
#   bash run_ascend.sh --config ... --dry-run          # print the msrun command, run nothing
#
# Options:
#   --config FILE        YAML config (required)
#   --data-root DIR      sets data.root
#   --output-dir DIR     run folder (default: the config's output_dir)
#   --devices N          NPUs used on this node (default: all that are visible, at most 8)
#   --nodes N            number of nodes (default 1); --node-rank R (default 0)
#   --master-addr A      address of node 0 (default 127.0.0.1); --master-port P (default 8118)
#   --resume             continue from OUTPUT_DIR/last.safetensors
#   --dry-run            check nothing that needs an NPU; print the command
#   -- key=value ...     further config overrides, e.g. -- train.epochs=30 train.batch_size=128
set -euo pipefail

die() { echo "run_ascend.sh: $*" >&2; exit 2; }

CONFIG="" DATA_ROOT="" OUTPUT_DIR="" DEVICES="" NODES=1 NODE_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=8118
RESUME="" DRY_RUN=0 OVERRIDES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG=${2:?}; shift 2 ;;
    --data-root) DATA_ROOT=${2:?}; shift 2 ;;
    --output-dir) OUTPUT_DIR=${2:?}; shift 2 ;;
    --devices) DEVICES=${2:?}; shift 2 ;;
    --nodes) NODES=${2:?}; shift 2 ;;
    --node-rank) NODE_RANK=${2:?}; shift 2 ;;
    --master-addr) MASTER_ADDR=${2:?}; shift 2 ;;
    --master-port) MASTER_PORT=${2:?}; shift 2 ;;
    --resume) RESUME=--resume; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; OVERRIDES+=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *=*) OVERRIDES+=("$1"); shift ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ -n "$CONFIG" ] || die "--config is required (see --help)"
[ -f "$CONFIG" ] || die "config file not found: $CONFIG"
for n in NODES NODE_RANK MASTER_PORT; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "--$(echo $n | tr 'A-Z_' 'a-z-') must be a whole number, got '${!n}'"
done
[ "$NODE_RANK" -lt "$NODES" ] || die "--node-rank $NODE_RANK must be below --nodes $NODES"

# Environment checks. A dry run reports what it would fail on but still prints the command.
problems=()
if [ -z "${ASCEND_HOME_PATH:-}" ] && [ -z "${ASCEND_TOOLKIT_HOME:-}" ]; then
  problems+=("CANN is not set up: source /usr/local/Ascend/ascend-toolkit/set_env.sh (ASCEND_HOME_PATH is unset)")
fi
visible=0
if command -v npu-smi >/dev/null 2>&1; then
  visible=$(npu-smi info -l 2>/dev/null | awk -F: '/Total Count/ {gsub(/ /, "", $2); print $2}')
fi
[ -n "$visible" ] && [ "$visible" -gt 0 ] 2>/dev/null || visible=$( (ls /dev/davinci[0-9]* 2>/dev/null || true) | wc -l)
if [ -z "$DEVICES" ]; then
  DEVICES=$(( visible > 8 ? 8 : visible ))
  [ "$DEVICES" -gt 0 ] || { problems+=("no Ascend NPU found (npu-smi shows none, no /dev/davinci*)"); DEVICES=8; }
elif [ "$DEVICES" -gt "$visible" ]; then
  problems+=("--devices $DEVICES but this node has $visible NPUs")
fi
if ! command -v msrun >/dev/null 2>&1; then
  problems+=("msrun not found: install MindSpore for Ascend (it provides msrun) into the active environment")
fi
if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do echo "run_ascend.sh: $p" >&2; done
  [ "$DRY_RUN" = 1 ] || exit 2
fi

SCRIPT=$(python3 -c "import vpmnet.cli as c; print(c.__file__)" 2>/dev/null || echo src/vpmnet/cli.py)
OUT=${OUTPUT_DIR:-$(python3 - "$CONFIG" <<'PY' 2>/dev/null || echo runs/ascend
import sys
from vpmnet.config import load_config
print(load_config(sys.argv[1]).output_dir)
PY
)}
ARGS=(train --config "$CONFIG" --output-dir "$OUT" device=Ascend)
[ -n "$DATA_ROOT" ] && ARGS+=("data.root=$DATA_ROOT")
[ -n "$RESUME" ] && ARGS+=("$RESUME")
ARGS+=("${OVERRIDES[@]}")
CMD=(msrun --worker_num=$(( NODES * DEVICES )) --local_worker_num="$DEVICES" --node_rank="$NODE_RANK"
     --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" --log_dir="$OUT/msrun_logs" --join=True
     --cluster_time_out=600 --bind_core=True "$SCRIPT" "${ARGS[@]}")

if [ "$DRY_RUN" = 1 ]; then
  printf '%q ' "${CMD[@]}"; echo
  exit 0
fi
mkdir -p "$OUT"
echo "run_ascend.sh: node $NODE_RANK of $NODES, $DEVICES NPUs, worker logs in $OUT/msrun_logs"
exec "${CMD[@]}"
