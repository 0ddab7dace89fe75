"""Run a snippet in a fresh interpreter (nothing imported yet) and read the JSON it prints last."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_fresh(code: str, timeout: int = 300):
    """Execute ``code`` with ``python -c`` in the repository root and return the JSON of its last output line."""
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
