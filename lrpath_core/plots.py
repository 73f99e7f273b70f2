"""Plots a person would rather look at than read: LR paths (the paper's Figure 1), loss and cost curves."""

from __future__ import annotations

from pathlib import Path

from lrpath_core.schedules import LRPath
from lrpath_core.timeline import Paradigm

TITLES: dict[str, str] = {
    "ptfs": "PTFS: pre-train from scratch per version",
    "cpt": "CPT: continue from the previous release",
    "path_switching": "Path switching: main path + branches",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_lr_paths(
    paths: dict[Paradigm, list[tuple[str, int, LRPath, int, int]]], out: str | Path, title: str | None = None
) -> Path:
    """Three panels, one per paradigm, one colour per version; x is the training step of each run."""
    plt = _pyplot()
    colors = plt.get_cmap("tab10").colors
    order = [p for p in ("ptfs", "cpt", "path_switching") if p in paths]
    fig, axes = plt.subplots(len(order), 1, figsize=(9, 2.6 * len(order)), sharex=True, squeeze=False)
    for ax, paradigm in zip(axes[:, 0], order, strict=True):
        for kind, version, lr_path, first, end in paths[paradigm]:
            steps = list(range(first, end))
            color = "0.25" if kind == "main" else colors[(version - 1) % len(colors)]
            label = (
                "main path"
                if kind == "main" and version == 1
                else (f"v{version}" if kind != "main" else None)
            )
            ax.plot(
                steps,
                [lr_path.lr(s) for s in steps],
                color=color,
                lw=1.6 if kind != "main" else 1.2,
                ls="--" if kind == "main" else "-",
                label=label,
            )
        ax.set_title(TITLES[paradigm], fontsize=10, loc="left")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=6, loc="upper right")
    axes[-1, 0].set_xlabel("optimizer step (global data position; PTFS runs each restart at 0)")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
