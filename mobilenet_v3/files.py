"""Atomic writes: a file or a folder appears whole under its name, or not at all.

Everything the project writes for users (run folders, exports, reports) goes through here.
"""

import json
import os
import shutil
import tempfile
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str, data: bytes, overwrite: bool = True):
    """Writes to a temporary file in the same folder, then renames: never a partial file."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-",
                               suffix=os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_umask())      # mkstemp makes 0600; files follow the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str, overwrite: bool = True):
    atomic_write(path, text.encode("utf-8"), overwrite)


def atomic_write_json(path: str, value, overwrite: bool = True):
    atomic_write_text(path, json.dumps(value, indent=2, default=str), overwrite)


def atomic_write_dir(target: str, fill: Callable[[str], None]):
    """Fills a temporary sibling folder with `fill(tmp)`, then swaps it in for `target`.

    The old folder is moved aside before the swap and removed after it, so `target` is
    always either the old complete folder or the new complete one.
    """
    tmp = f"{target}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = f"{target}.old-{os.getpid()}"
    if os.path.exists(target):
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
