#!/usr/bin/env bash
# Training set of the residual SSR-lite (options/train_ssr_lite_residual_x4.yml): 128 px HR crops of T91 + BSD200,
# half degraded clean and half with Gaussian noise 10 + JPEG 75 (depth-driven SV blur), and base/ = the output I^T
# of the lite blind path (options/test_blind_lite_x4.yml) on each LR. Usage:
#   bash scripts/prepare_residual_set.sh [SHARED_DATASETS=../shared/datasets] [PER_HALF=400]
# Writes datasets/SSR_residual_train/{HR,LR,kernel,depth,base}; about 1-2 s per image on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared/datasets}
PER_HALF=${2:-400}
PY=.venv/bin/python
WORK=datasets/.residual_work
OUT=datasets/SSR_residual_train
rm -rf "$WORK" && mkdir -p "$WORK/src" "$WORK/hr_a" "$WORK/hr_b"
cp "$SHARED"/T91/* "$SHARED"/BSD200/* "$WORK/src/"
$PY scripts/extract_subimages.py -i "$WORK/src" -o "$WORK/hr128" --crop-size 128 --step 128 --quiet
# every third crop, alternating between the clean and the noisy half
i=0
for f in "$WORK"/hr128/*.png; do
  if [ $((i % 3)) -eq 0 ]; then half=$([ $((i / 3 % 2)) -eq 0 ] && echo a || echo b); cp "$f" "$WORK/hr_$half/"; fi
  i=$((i + 1))
done
for half in a b; do ls "$WORK/hr_$half" | tail -n +$((PER_HALF + 1)) | sed "s#^#$WORK/hr_$half/#" | xargs -r rm; done
$PY scripts/generate_sv_testset.py -i "$WORK/hr_a" -o "$WORK/set_a" --mode sv_depth --seed 101 --quiet
$PY scripts/generate_sv_testset.py -i "$WORK/hr_b" -o "$WORK/set_b" --mode sv_depth --seed 202 --noise 10 --jpeg 75 \
  --quiet
cat > "$WORK/blind.yml" <<YML
_base_: $(pwd)/options/test_blind_lite_x4.yml
name: residual_train_base
num_gpu: 0
datasets:
  _delete_: true
  test_1: {name: set_a, type: SVPairedDataset, dataroot: $(pwd)/$WORK/set_a}
  test_2: {name: set_b, type: SVPairedDataset, dataroot: $(pwd)/$WORK/set_b}
val: {save_img: true, suffix: base, metrics: {_delete_: true}}
YML
[ -f experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth ] || $PY scripts/convert_realsr_ncnn.py
rm -rf results/residual_train_base
$PY ssr/test.py -opt "$WORK/blind.yml"
mkdir -p "$OUT.tmp"/{HR,LR,kernel,depth,base}
for half in a b; do
  for sub in HR LR kernel depth; do cp "$WORK/set_$half/$sub"/* "$OUT.tmp/$sub/"; done
  for f in results/residual_train_base/visualization/set_$half/*_base.png; do
    cp "$f" "$OUT.tmp/base/$(basename "$f" _base.png).png"
  done
done
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT" && rm -rf "$WORK" results/residual_train_base
echo "[prepare_residual_set] wrote $(ls "$OUT/LR" | wc -l) pairs to $OUT"
