#!/usr/bin/env bash
# One calibration probe on a finished demo run: train a calibration of two of its LoRAs with the
# given settings, score it on the sub-task's test rows, print one line. These are the commands
# behind the README's "How we got here" calibration figures.
#
#   scripts/calib_probe.sh WORK SUBTASK VARIANT MODE LR EPOCHS [DATA] [OUT]
#   scripts/calib_probe.sh mlx-lc-demo/work/seed0 reply+fr lc++ scale 5e-3 4
#
# WORK: a demo's work/seedN folder; DATA: a folder with train.jsonl + valid.jsonl (default: the
# demo's own rows for SUBTASK); OUT: where the calibration goes (default: a new temporary folder).
set -euo pipefail
if [ $# -lt 6 ]; then sed -n 6,7p "$0" | cut -c3-; exit 2; fi
work=$1 sub=$2 variant=$3 mode=$4 lr=$5 epochs=$6
data=${7:-$work/world/comp/$sub}
out=${8:-$(mktemp -d)/calibration}
primary=${sub%%+*} secondary=${sub##*+}
for p in "$work/base" "$work/loras/$primary" "$work/loras/$secondary" "$data/train.jsonl"; do
  [ -e "$p" ] || { echo "calib_probe: $p not found" >&2; exit 1; }
done
mlx-lc calibrate -m "$work/base" -a "$work/loras/$primary" -a "$work/loras/$secondary" --variant "$variant" \
  --mode "$mode" --lr "$lr" --epochs "$epochs" --batch-size 16 --patience 3 -d "$data" -o "$out" -q
mlx-lc eval -m "$work/base" -a "$work/loras/$primary" -a "$work/loras/$secondary" -c "$out" \
  -d "$work/world/comp/$sub/test.jsonl" --max-tokens 64 --batch-size 64 -o "$out/eval" >/dev/null
python - "$out" <<'PY'
import json, sys
out = sys.argv[1]
c = json.load(open(f"{out}/calibration_config.json"))["result"]
r = next(iter(json.load(open(f"{out}/eval/results.json"))["per_task"].values()))
print(f"{out}: steps {c['steps']} (best {c['best_step']}, dev loss {c['best_val_loss']:.3f}, {c['seconds']:.0f} s)  "
      f"judge {100 * r['judge_pass']:.1f}%  facts {100 * r['fact_acc']:.1f}%  {r['metric']} {100 * r['score']:.1f}")
PY
