"""history.png: NetAdapt's proposals and chosen path (save), NAS's samples and their Pareto
front (save_pareto); latency vs held-out top-1."""

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
    _write(fig, path)


def _write(fig, path: str) -> None:
    import matplotlib.pyplot as plt
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as tmp:
        out = os.path.join(tmp, "plot.png")
        fig.savefig(out, dpi=120)
        with open(out, "rb") as f:
            files.atomic_write(path, f.read())
    plt.close(fig)


def save_pareto(history: dict, path: str) -> None:
    """A NAS search: every trained sample's latency vs proxy top-1, coloured by round, the
    Pareto front (no sample both faster and more accurate) and the target."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    settings = history["settings"]
    samples = [(r["round"], s) for r in history["rounds"] for s in r["samples"] if "top1" in s]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if samples:
        points = ax.scatter([s["latency"] for _, s in samples], [s["top1"] for _, s in samples],
                            c=[r for r, _ in samples], cmap="viridis", s=14)
        fig.colorbar(points, ax=ax, label="round")
        front, best_top1 = [], -1.0
        for _, s in sorted(samples, key=lambda x: (x[1]["latency"], -x[1]["top1"])):
            if s["top1"] > best_top1:
                front.append(s)
                best_top1 = s["top1"]
        ax.plot([s["latency"] for s in front], [s["top1"] for s in front], "-", c="tab:red",
                label="Pareto front")
    ax.axvline(settings["target"], ls="--", c="tab:blue", label="target")
    ax.set_xlabel(f"latency ({settings['unit']}, {settings['oracle']})")
    ax.set_ylabel("proxy-trained held-out top-1")
    ax.set_title(f"NAS ({settings['algorithm']}, w = {settings['w']}): every sample")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _write(fig, path)
