#!/usr/bin/env bash
# Retrain every lite weight file in weights/ from scratch, in order, then export them (see weights/README.md).
# Needs the offline corpus and SV Set5 (docs/prepare_datasets.md). On the 2-core CPU of this project the four runs
# took about 39 + 12 + 21 + 24 + 21 min; with a GPU the same recipes run on it (num_gpu: auto) in minutes, and larger
# widths / crops are worth it (see the comments in each option file). Resumable: rerun after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -f experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth ] || "$PY" scripts/convert_realsr_ncnn.py
for recipe in train_dkenet_x4 train_dkenet_lite_x4 train_nbsr_x4 train_ssr_lite_x4 train_ssr_lite_ft_x4; do
  echo "[train_lite] $recipe" >&2
  "$PY" ssr/train.py -opt "options/$recipe.yml" --auto_resume
done
"$PY" scripts/export_lite_weights.py --overwrite -o weights/dkenet_f32_x4_sv.pth \
  --dkenet experiments/train_DKENet_x4_f32_SVdepth_dropout/models/net_g_latest.pth
"$PY" scripts/export_lite_weights.py --overwrite -o weights/nbsr_sft_delta_x4_sv.pth \
  --nbsr experiments/train_NBSR_x4_RealSRtrunk_SFT/models/net_g_latest.pth \
  --trunk experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth
"$PY" scripts/export_lite_weights.py --overwrite -o weights/ssr_lite_x4.pth --param-key params_ema \
  --ssr experiments/train_SSR_lite_x4_AMFUNet_c96_ft/models/net_g_latest.pth
# the residual SSR-lite of test_ssr_lite_x4.yml: fixed pairs with the lite blind path's output, then 1,500 iterations
# from the image-formulation weights
[ -d datasets/SSR_residual_train ] || bash scripts/prepare_residual_set.sh
"$PY" ssr/train.py -opt options/train_ssr_lite_residual_x4.yml --auto_resume
"$PY" scripts/export_lite_weights.py --overwrite -o weights/ssr_lite_residual_x4.pth --param-key params_ema \
  --ssr experiments/train_SSR_lite_residual_x4/models/net_g_latest.pth
