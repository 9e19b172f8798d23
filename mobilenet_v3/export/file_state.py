"""What an earlier export left at a target: a complete file to keep, one to redo, or a
stranger's file to refuse.

Each export writes a file's JSON report (its settings, the file's sha256 and the sha256 of the
file it replaces) before the file itself. A rerun with the same settings keeps a file whose
bytes match its report and redoes a missing one or the one it was replacing (a kill between
the two writes); any other file, one whose report names other settings, or one without a
report, is refused unless the caller overwrites.
"""

import hashlib
import json
import os
from typing import Dict, Optional, Tuple


def report_path(target: str) -> str:
    return target[:-len(".tflite")] + ".json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def earlier(target: str, settings: Dict) -> Tuple[Optional[Dict], bool]:
    """(the complete earlier report of these settings or None, whether the target is ours to
    (re)write)."""
    try:
        with open(report_path(target)) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None, not os.path.exists(target)
    if report.get("export_settings") != settings:
        return None, not os.path.exists(target)
    present = current_sha256(target)
    if present is None:
        return None, True
    if present == report.get("sha256"):
        return report, True
    return None, present == report.get("replaces_sha256")


def current_sha256(target: str) -> Optional[str]:
    """The sha256 of the file at `target`, None when there is none."""
    try:
        with open(target, "rb") as f:
            return sha256(f.read())
    except OSError:
        return None


def write_rejected(target: str, tflite: bytes, report: Dict) -> str:
    """Keeps a file the guard refused beside its target, never at it; returns its path."""
    from mobilenet_v3 import files
    rejected = target[:-len(".tflite")] + ".rejected.tflite"
    report.update(file=os.path.basename(rejected), written=False)
    files.atomic_write(rejected, tflite, True)
    files.atomic_write_json(report_path(rejected), report, True)
    return rejected
