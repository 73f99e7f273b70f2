"""Every figure the project draws, as PNG files on the local disk.

Every paradigm's LR paths (the paper's Figure 1) for a timeline or a comparison, and a
comparison's PPL per version and relative cost vs APPL (the paper's Figure 2), with the spread
over seeds as error bars. Callers put the
files into a store themselves.
"""

from __future__ import annotations

from pathlib import Path

from lrpath_core.compare_result import CompareResult
from lrpath_core.config import ProjectConfig
from lrpath_core.timeline import Paradigm, Run, Timeline, lr_paths

LRPaths = dict[Paradigm, list[Run]]
"""What :func:`lrpath_core.timeline.lr_paths` gives: every run of every paradigm."""

LABELS: dict[str, str] = {
    "ptfs": "PTFS",
    "cpt": "CPT",
    "cpt_replay": "CPT + replay",
    "wsd_s": "WSD-S",
    "infinite": "infinite",
    "path_switching": "path switching",
}
COLORS: dict[str, str] = {
    "ptfs": "tab:blue",
    "cpt": "tab:red",
    "cpt_replay": "tab:orange",
    "wsd_s": "tab:purple",
    "infinite": "tab:brown",
    "path_switching": "tab:green",
}
"""One colour per paradigm; the LR-path panels colour by version instead."""

TITLES: dict[str, str] = {
    "ptfs": "PTFS: pre-train from scratch per version",
    "cpt": "CPT: continue from the previous release",
    "cpt_replay": "CPT + replay: continue, mixing in earlier versions' data",
    "wsd_s": "WSD-S: one trajectory, decay at each release, re-warm from the decayed model",
    "infinite": "Infinite: cool-down to a plateau, anneal each release from it",
    "path_switching": "Path switching: main path + branches",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, out: str | Path) -> None:
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_lr_paths(paths: LRPaths, out: str | Path, title: str | None = None) -> Path:
    """One panel per paradigm, one colour per version; x is the training step of each run."""
    plt = _pyplot()
    colors = plt.get_cmap("tab10").colors
    order = [p for p in TITLES if p in paths]
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
    _save(plt, fig, out)
    return Path(out)


def lr_plot_png(timeline: Timeline, config: ProjectConfig, out: str) -> str:
    """Every paradigm's LR paths for the timeline's versions (the paper's Figure 1)."""
    o = config.optimizer
    paths = lr_paths(timeline.plans(), o.lr_max, o.lr_min, o.warmup_steps, timeline.decay)
    plot_lr_paths(
        paths, out, title=f"{len(timeline.versions)} versions, alpha={timeline.alpha}, decay={timeline.decay}"
    )
    return out


def plot_ppl_per_version(result: CompareResult, out: str, title: str | None = None) -> str:
    """Left: PPL of each release v_i on D_1..D_i; right: the last release's PPL on each D_j."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, r in result.paradigms.items():
        xs = list(range(1, len(r.ppl) + 1))
        left.errorbar(
            xs,
            r.ppl,
            yerr=r.ppl_std,
            marker="o",
            capsize=3,
            color=COLORS.get(name),
            label=f"{LABELS[name]} (APPL {r.appl:.2f} ± {r.appl_std:.2f})",
        )
        last = r.ppl_per_version[-1]
        right.plot(xs, [last[f"v{i}"] for i in xs], marker="s", color=COLORS.get(name), label=LABELS[name])
    left.set_xlabel("release v_i")
    left.set_ylabel("PPL on D_1..D_i (validation)")
    left.set_title("PPL of each version's release", fontsize=10, loc="left")
    right.set_xlabel("data version D_j")
    right.set_ylabel("PPL of the last release")
    right.set_title("last release, per data version", fontsize=10, loc="left")
    for ax in (left, right):
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(plt, fig, out)
    return out


def plot_cost_vs_appl(
    points: list[tuple[str, str, float, float]],
    out: str,
    title: str | None = None,
    errors: list[float] | None = None,
) -> str:
    """Relative cost vs APPL (the paper's Figure 2); ``points`` are ``(paradigm, label, cost, appl)``,
    ``errors`` the APPL's standard deviation over seeds (one per point)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for (paradigm, label, cost, value), err in zip(points, errors or [0.0] * len(points), strict=True):
        color = COLORS.get(paradigm, "0.4")
        ax.errorbar([cost], [value], yerr=[err], fmt="o", ms=7, capsize=3, color=color, zorder=3)
        ax.annotate(label, (cost, value), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("relative cost (optimizer steps / PTFS's)")
    ax.set_ylabel("APPL (mean PPL of the releases)")
    ax.set_xlim(0, max(1.1, max(p[2] for p in points) + 0.1))
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    _save(plt, fig, out)
    return out


def plot_alpha_shape_study(points: list[dict], out: str, title: str | None = None) -> str:
    """The second-stage study: path switching's APPL ± std against its relative cost (one point per
    α, labelled below the axis), a line per decay shape, and PTFS of that shape as a dashed line of
    the same colour; ``points`` carry ``paradigm``, ``decay``, ``alpha``, ``relative_cost``,
    ``appl`` and ``appl_std``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ticks: dict[float, str] = {}
    for index, shape in enumerate(dict.fromkeys(p["decay"] for p in points)):
        color = colors[index % len(colors)]
        mine = sorted(
            (p for p in points if p["decay"] == shape and p["paradigm"] != "ptfs"), key=lambda p: p["alpha"]
        )
        ax.errorbar(
            [p["relative_cost"] for p in mine],
            [p["appl"] for p in mine],
            yerr=[p["appl_std"] for p in mine],
            marker="o",
            capsize=3,
            color=color,
            label=f"path switching, {shape}",
        )
        for p in mine:
            ticks[round(p["relative_cost"], 3)] = f"{p['relative_cost']:.2f}\nα={p['alpha']:g}"
        for p in points:
            if p["decay"] == shape and p["paradigm"] == "ptfs":
                ax.axhline(p["appl"], color=color, ls="--", lw=1.2, label=f"PTFS, {shape} ({p['appl']:.1f})")
    ax.set_xticks(list(ticks), list(ticks.values()), fontsize=8)
    ax.set_xlabel("relative cost (optimizer steps / PTFS's) and branch α")
    ax.set_ylabel("APPL (mean PPL of the releases)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title, fontsize=9)
    _save(plt, fig, out)
    return out


def plot_versions_study(points: list[dict], out: str, title: str | None = None) -> str:
    """Relative cost (left) and APPL ± std (right) against the number of versions V, per paradigm;
    ``points`` carry ``paradigm``, ``versions``, ``relative_cost``, ``appl`` and ``appl_std``."""
    plt = _pyplot()
    fig, (cost_ax, appl_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for paradigm in dict.fromkeys(p["paradigm"] for p in points):
        mine = sorted((p for p in points if p["paradigm"] == paradigm), key=lambda p: p["versions"])
        xs = [p["versions"] for p in mine]
        style = {"marker": "o", "color": COLORS.get(paradigm), "label": LABELS.get(paradigm, paradigm)}
        cost_ax.plot(xs, [p["relative_cost"] for p in mine], **style)
        appl_ax.errorbar(
            xs, [p["appl"] for p in mine], yerr=[p["appl_std"] for p in mine], capsize=3, **style
        )
    cost_ax.set_ylabel("relative cost (steps / PTFS's)")
    appl_ax.set_ylabel("APPL")
    for ax in (cost_ax, appl_ax):
        ax.set_xlabel("versions V")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(plt, fig, out)
    return out


def plot_comparison(
    paths: LRPaths, result: CompareResult, lr_out: str, ppl_out: str, cost_out: str, title: str | None = None
) -> None:
    """A comparison's three figures: the LR paths it ran, PPL per version, relative cost vs APPL."""
    points = [(name, LABELS[name], r.relative_cost, r.appl) for name, r in result.paradigms.items()]
    plot_lr_paths(paths, lr_out, title=title)
    plot_ppl_per_version(result, ppl_out, title=title)
    plot_cost_vs_appl(points, cost_out, title=title, errors=[r.appl_std for r in result.paradigms.values()])


LossRows = list[tuple[int, float, float]]
"""A segment's loss log: ``(step, loss, lr)`` per optimizer step (``layout.losses(run)``)."""


def plot_segment_losses(curves: dict[str, LossRows], out: str | Path, title: str | None = None) -> Path:
    """Measured loss (top) and LR (bottom) against the step, one line per path (main path, branch)."""
    plt = _pyplot()
    fig, (loss_ax, lr_ax) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, height_ratios=(3, 2))
    styles = {"main": ("0.25", "--"), "branch": ("tab:green", "-")}
    for label, rows in curves.items():
        if not rows:
            continue
        color, line = styles.get(label.split()[0], ("tab:blue", "-"))
        steps = [r[0] for r in rows]
        loss_ax.plot(steps, [r[1] for r in rows], color=color, ls=line, lw=1.2, label=label)
        lr_ax.plot(steps, [r[2] for r in rows], color=color, ls=line, lw=1.4, label=label)
    loss_ax.set_ylabel("training loss")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("optimizer step")
    for ax in (loss_ax, lr_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    if title:
        loss_ax.set_title(title, fontsize=10, loc="left")
    _save(plt, fig, out)
    return Path(out)
