"""Opens the official `v3-*_224_*_{float,uint8}.tgz` archives: extracts them to a temporary folder.

Finds the TF-Slim checkpoint prefix (preferring an `ema` one) or the .tflite file inside.
"""

import contextlib
import glob
import os
import tarfile
import tempfile
import zlib
from typing import Iterator, List, Optional, Tuple

from mobilenet_v3.weights.errors import CorruptWeightsError

ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar")


def is_archive(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(ARCHIVE_SUFFIXES)


def find_checkpoint(folder: str) -> Optional[str]:
    """The checkpoint prefix under `folder` ('ema' ones first), or None."""
    indexes = sorted(glob.glob(os.path.join(folder, "**", "*.index"), recursive=True),
                     key=lambda p: ("ema" not in p.lower(), p))
    return indexes[0][:-len(".index")] if indexes else None


def find_tflite(folder: str) -> Optional[str]:
    files = sorted(glob.glob(os.path.join(folder, "**", "*.tflite"), recursive=True))
    return files[0] if files else None


def member_names(path: str) -> List[str]:
    """The files an archive holds (nothing is extracted)."""
    try:
        with tarfile.open(path) as tar:
            return [m.name for m in tar.getmembers() if m.isfile()]
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise CorruptWeightsError(f"{path!r} is not a readable archive "
                                  f"(truncated download?): {e}") from None


@contextlib.contextmanager
def extracted_folder(path: str, suffixes: Tuple[str, ...] = (".index", ".tflite")
                     ) -> Iterator[str]:
    """A temporary folder with the archive's checkpoint files (.index, .data-*) and the files
    ending in `suffixes`."""
    with tempfile.TemporaryDirectory(prefix="mobilenet_v3_weights_") as tmp:
        try:
            with tarfile.open(path) as tar:
                members = [m for m in tar.getmembers() if m.isfile() and (
                    m.name.endswith(suffixes) or ".data-" in m.name)]
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise CorruptWeightsError(f"{path!r} is not a readable .tgz archive "
                                      f"(truncated download?): {e}") from None
        yield tmp


@contextlib.contextmanager
def extracted(path: str) -> Iterator[Tuple[Optional[str], Optional[str]]]:
    """Yields (checkpoint prefix or None, .tflite path or None) found in the archive."""
    with extracted_folder(path) as tmp:
        yield find_checkpoint(tmp), find_tflite(tmp)

