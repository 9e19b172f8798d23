"""MediaPipe Tasks in an environment of its own, created once and cached.

MediaPipe does not install beside our TensorFlow (1.2.x pins absl-py ~= 2.3 against
tensorflow-model-optimization's ~= 1.2; 0.10.x numpy < 2 and protobuf 4), so it lives in a
venv under the cache folder (`$MOBILENET_V3_CACHE`, default ~/.cache/mobilenet_v3), made with
pip on first use (about 650 MB, a minute or two) and reused afterwards. Files are run there
through mediapipe_runner.py, a script that imports only mediapipe and numpy.
"""

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, Optional, Sequence

import numpy as np

MEDIAPIPE_VERSION = "1.2.2"       # the release app developers get today (pip, Nov 2026)
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mediapipe_runner.py")
INSTALL_TIMEOUT_S = 1200
RUN_TIMEOUT_S = 1800


class MediaPipeUnavailable(RuntimeError):
    """MediaPipe's environment could not be created (no registry access, no wheel, ...)."""


class MediaPipeError(RuntimeError):
    """MediaPipe refused or failed on a file."""


def cache_folder() -> str:
    return os.environ.get("MOBILENET_V3_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "mobilenet_v3"))


def env_folder(version: str = MEDIAPIPE_VERSION) -> str:
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    return os.path.join(cache_folder(), f"mediapipe-{version}-{tag}")


def python_of(folder: str) -> str:
    return os.path.join(folder, "bin", "python")


@contextlib.contextmanager
def _locked(path: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)      # two test workers create it once
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(version: str = MEDIAPIPE_VERSION) -> str:
    """The Python of an environment with mediapipe==version (created if missing); raises
    MediaPipeUnavailable with pip's reason when it cannot be made."""
    folder = env_folder(version)
    done = os.path.join(folder, ".complete")
    with _locked(folder + ".lock"):
        if os.path.isfile(done):
            return python_of(folder)
        staging = folder + ".partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        steps = ([sys.executable, "-m", "venv", staging],
                 [python_of(staging), "-m", "pip", "install", "-q",
                  "--disable-pip-version-check", f"mediapipe=={version}"])
        for step in steps:
            try:
                done_step = subprocess.run(step, capture_output=True, text=True,
                                           timeout=INSTALL_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as e:
                shutil.rmtree(staging, ignore_errors=True)
                raise MediaPipeUnavailable(f"cannot create MediaPipe's environment: {e}") \
                    from None
            if done_step.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                lines = [l for l in (done_step.stderr or done_step.stdout).splitlines()
                         if l.strip() and not l.startswith("WARNING: Location")]
                raise MediaPipeUnavailable(
                    f"cannot install mediapipe=={version} in its own environment: "
                    f"{lines[-1] if lines else 'pip failed'}")
        os.rename(staging, folder)              # venvs run from a new path via bin/python
        with open(done, "w") as f:
            f.write(version + "\n")
    return python_of(folder)


def run(task: str, model: str, images: Optional[Sequence[str]] = None,
        arrays: Optional[np.ndarray] = None, version: str = MEDIAPIPE_VERSION,
        **options) -> Dict:
    """MediaPipe Tasks' results for `model` on photos (`images`, MediaPipe resizes them)
    and/or uint8 RGB `arrays` (N, H, W, 3); see mediapipe_runner.py for the result's form.
    Segmentation results carry the category masks as "masks" (N, H, W)."""
    python = ensure(version)
    with tempfile.TemporaryDirectory() as folder:
        request = {"task": task, "model": os.path.abspath(model),
                   "images": [os.path.abspath(p) for p in images or []], **options}
        if arrays is not None:
            request["arrays"] = os.path.join(folder, "arrays.npy")
            np.save(request["arrays"], np.asarray(arrays, np.uint8))
        if task == "segmentation":
            request["masks"] = os.path.join(folder, "masks.npy")
        paths = [os.path.join(folder, name) for name in ("request.json", "result.json")]
        with open(paths[0], "w") as f:
            json.dump(request, f)
        env = dict(os.environ, GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("PYTHONPATH", None)
        try:
            done = subprocess.run([python, RUNNER, *paths], capture_output=True, text=True,
                                  timeout=RUN_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            raise MediaPipeError(f"MediaPipe did not finish {model} in {RUN_TIMEOUT_S} s") \
                from None
        if not os.path.isfile(paths[1]):
            tail = (done.stderr or "").strip().splitlines()[-3:]
            raise MediaPipeError(f"MediaPipe crashed on {model} (exit {done.returncode}): "
                                 + " | ".join(tail))
        with open(paths[1]) as f:
            result = json.load(f)
        if not result["ok"]:
            raise MediaPipeError(f"MediaPipe refused {model}: {result['error']}")
        if task == "segmentation":
            result["masks"] = np.load(request["masks"])
        return result
