"""The README's main-job command works as written: it trains on the built-in dataset and
reports accuracy well above chance."""

import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _first_command() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    return re.search(r"```bash\n(.*?)\n\s*```", text, re.S).group(1).strip()


@pytest.mark.slow
def test_readme_main_job_trains_and_reports_accuracy(tmp_path):
    command = _first_command()
    install, _, job = command.partition(" && ")
    assert install == "pip install -e ."
    args = shlex.split(job)
    assert args[:2] == ["python", "train.py"]
    args = [sys.executable, "train.py"] + [
        f"--model_dir={tmp_path}" if a.startswith("--model_dir=") else a for a in args[2:]]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = [line for line in proc.stdout.splitlines() if line.startswith("final (EMA")]
    assert final, proc.stdout[-2000:]
    top1 = float(final[0].split("top-1 ")[1].split()[0])
    assert top1 > 0.5          # 10 classes: chance is 0.1
