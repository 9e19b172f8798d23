"""A search's history.json: resumed only under the settings it was started with."""

import json
import os
from typing import Callable, Dict

from mobilenet_v3 import files


class SearchError(ValueError):
    """A search that cannot go on (a message for the user, no traceback)."""


def load(out: str, name: str, settings: Dict, empty: Callable[[], Dict]) -> Dict:
    """The search recorded in `out/name`, or `empty()` with these settings; a search
    recorded with other settings is refused, because resuming it would mix two searches."""
    path = os.path.join(out, name)
    settings = json.loads(json.dumps(settings))    # as the file holds them (tuples: lists)
    if not os.path.exists(path):
        return dict(empty(), settings=settings)
    try:
        with open(path) as f:
            history = json.load(f)
    except (OSError, ValueError) as e:
        raise SearchError(f"{path} is unreadable ({e}); move it away to start again") from None
    changed = {k: (history["settings"].get(k), v) for k, v in settings.items()
               if history["settings"].get(k) != v}
    if changed:
        raise SearchError(
            f"{out} holds a search with other settings: " + "; ".join(
                f"{k}: {a!r} then, {b!r} now" for k, (a, b) in changed.items())
            + ". Rerun with the same settings to resume, or use a new --output_dir")
    return history


def save(out: str, name: str, history: Dict, plot: Callable[[Dict, str], None],
         log: Callable[[str], None]):
    """history.json atomically, then its plot (a failed plot loses nothing measured)."""
    files.atomic_write_json(os.path.join(out, name), history)
    try:
        plot(history, os.path.join(out, os.path.splitext(name)[0] + ".png"))
    except Exception as e:
        log(f"warning: the plot was not written ({e})")
