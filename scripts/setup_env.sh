#!/usr/bin/env bash
# Create (or complete) the project's virtual environment at $SSR_VENV (default: .venv in the repository root).
# Idempotent: does nothing when the environment is complete and requirements.txt has not changed since.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SSR_VENV:-.venv}
STAMP="$VENV/.ssr-env-complete"
if [ -f "$STAMP" ] && [ "$STAMP" -nt requirements.txt ] && [ "$STAMP" -nt requirements-nodeps.txt ] \
    && [ "$STAMP" -nt setup.py ]; then
  exit 0
fi
start=$(date +%s)
echo "[setup_env] preparing $VENV (first run takes a few minutes)" >&2
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# 1. everything pinned in requirements.txt (torch / torchvision come from the machine's local wheels). A torch
#    already in the environment (e.g. a CUDA build in an existing $SSR_VENV) is kept: only the other pins install.
if "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
  echo "[setup_env] keeping the installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')" >&2
  grep -vE '^(torch|torchvision)==' requirements.txt > "$VENV/.requirements-without-torch.txt"
  "${PIP[@]}" -r "$VENV/.requirements-without-torch.txt"
else
  "${PIP[@]}" -r requirements.txt
fi
# 2. basicsr 1.4.2 is an sdist whose setup.py imports torch: build it against the torch just installed
"${PIP[@]}" --no-build-isolation basicsr==1.4.2
# 3. pyiqa (MUSIQ / CLIP-IQA) and openai-clip without their dependencies, which would replace pinned packages
"${PIP[@]}" --no-build-isolation --no-deps -r requirements-nodeps.txt
# 4. this package, editable, without re-resolving its dependencies
"${PIP[@]}" --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c "import ssr, basicsr, diffusers, timm, lmdb; assert lmdb.version()[0] >= 0"
touch "$STAMP"
echo "[setup_env] ready in $(( $(date +%s) - start )) s" >&2
