"""history.png: latency vs held-out top-1 of every proposal, the chosen path and the target."""

import os
import tempfile

from mobilenet_v3 import files


def save(history: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    seed, unit = history["seed"], history["settings"].get("unit", "ms")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    tried = [p for s in history["steps"] for p in s["proposals"] if p.get("status") == "ok"]
    ax.scatter([p["latency"] for p in tried], [p["top1"] for p in tried], s=12, c="0.6",
               label="proposals (after T fine-tune steps)")
    path_points = [seed] + [s["chosen"] for s in history["steps"]]
    ax.plot([p["latency"] for p in path_points], [p["top1"] for p in path_points], "o-",
            c="tab:red", label="chosen path (seed first)")
    final = history.get("final")
    if final:
        ax.axvline(final["target"], ls="--", c="tab:blue", label="target")
        if final.get("top1") is not None and final["top1"] != path_points[-1]["top1"]:
            ax.scatter([final["latency"]], [final["top1"]], marker="*", s=120, c="tab:green",
                       label="final (long fine-tune)")
    ax.set_xlabel(f"latency ({unit}, {history['settings']['oracle']})")
    ax.set_ylabel("held-out top-1")
    ax.set_title("NetAdapt: measured proposals and choices")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as tmp:
        out = os.path.join(tmp, "plot.png")
        fig.savefig(out, dpi=120)
        with open(out, "rb") as f:
            files.atomic_write(path, f.read())
    plt.close(fig)
