"""The paper's stage studies (its Figures 4 and 5, and cost against the number of versions).

- ``first-stage``: path switching with the main path's LR at each of ``study_lr_factors`` × η_max
  (its branches decay from there to η_min), one comparison folder per factor; PTFS runs in the
  1× folder as the reference.
- ``second-stage``: path switching for every α in ``study_alphas`` × shape in ``study_shapes``, in
  one comparison folder (α and the shape may change there), with PTFS of each shape (equal terms).
- ``versions``: the versions of ``data`` read as one ordered corpus, re-split into V contiguous
  versions of about equal characters for each V in ``study_versions``; every paradigm in
  ``settings.paradigms`` is compared per V.

Each study writes ``studies/{study}.json`` (every point) and ``studies/{study}.png`` (cost vs
APPL, or relative cost and APPL against V) into ``out``; every setting is a resumable comparison
of its own under ``studies/{study}/``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Literal

from pydantic import BaseModel

from lrpath_core import layout
from lrpath_core.compare import compare_paradigms
from lrpath_core.compare_result import CompareResult
from lrpath_core.compare_setup import CompareError, version_sources
from lrpath_core.config import CompareSettings, ProjectConfig
from lrpath_core.corpus import READY, write_version
from lrpath_core.plots import LABELS, plot_alpha_shape_study, plot_cost_vs_appl, plot_versions_study
from lrpath_core.storage import Store, join
from lrpath_core.timeline import Paradigm

Study = Literal["first-stage", "second-stage", "versions"]
STUDIES: tuple[str, ...] = ("first-stage", "second-stage", "versions")


class StudyPoint(BaseModel):
    label: str
    paradigm: Paradigm
    versions: int
    relative_cost: float
    relative_cost_without_final_tail: float | None
    appl: float
    appl_std: float
    folder: str
    alpha: float | None = None
    decay: str | None = None


class StudyResult(BaseModel):
    study: str
    points: list[StudyPoint]
    plot: str


def run_study(
    study: str,
    data: str,
    out: str,
    config: ProjectConfig,
    settings: CompareSettings,
    versions: int | None = None,
    progress_bar: bool = False,
) -> StudyResult:
    """Run every setting of ``study`` (resumable), then write its summary and plot into ``out``."""
    if study not in STUDIES:
        raise CompareError(f"unknown study {study!r}: choose from {', '.join(STUDIES)}")
    root = Store(out)
    points: list[StudyPoint] = []

    def compare(folder: str, cfg: ProjectConfig, names: list[str], source: str = data, count=versions):
        url = join(root.url, folder)
        run = settings.model_copy(update={"paradigms": names})
        return url, compare_paradigms(source, url, cfg, count, progress_bar, run)

    if study == "first-stage":
        for factor in settings.study_lr_factors:
            o = config.optimizer
            if factor * o.lr_max < o.lr_min or factor * o.lr_max > 1:
                raise CompareError(f"a main-path LR of {factor:g}×{o.lr_max:g} lies outside [lr_min, 1]")
            cfg = config.model_copy(update={"optimizer": o.model_copy(update={"lr_max": factor * o.lr_max})})
            names = ["ptfs", "path_switching"] if factor == 1 else ["path_switching"]
            url, result = compare(layout.compare_study(study, f"lr-x{factor:g}"), cfg, names)
            points += _points(result, url, {"path_switching": f"main LR ×{factor:g}", "ptfs": "PTFS"})
    elif study == "second-stage":
        for shape in settings.study_shapes:
            for alpha in settings.study_alphas:
                paradigm = config.paradigm.model_copy(update={"alpha": alpha, "decay": shape})
                cfg = config.model_copy(update={"paradigm": paradigm})
                url, result = compare(layout.compare_study(study), cfg, ["ptfs", "path_switching"])
                labels = {"path_switching": f"α={alpha:g} {shape}"}
                if alpha == settings.study_alphas[0]:
                    labels["ptfs"] = f"PTFS {shape}"
                points += [
                    p.model_copy(update={"alpha": alpha if p.paradigm != "ptfs" else None, "decay": shape})
                    for p in _points(result, url, labels)
                ]
    else:
        for count in settings.study_versions:
            split = resplit(
                data, versions, join(root.url, layout.compare_study(study, f"data-V{count}")), count
            )
            url, result = compare(
                layout.compare_study(study, f"V{count}"), config, settings.paradigms, split, None
            )
            points += _points(result, url, {name: f"V={count}" for name in result.paradigms})
    return _write(root, study, points)


def _points(result: CompareResult, folder: str, labels: dict[str, str]) -> list[StudyPoint]:
    return [
        StudyPoint(
            label=label,
            paradigm=name,  # type: ignore[arg-type]
            versions=len(result.plan["versions"]),
            relative_cost=result.paradigms[name].relative_cost,  # type: ignore[index]
            relative_cost_without_final_tail=result.paradigms[name].relative_cost_without_final_tail,  # type: ignore[index]
            appl=result.paradigms[name].appl,  # type: ignore[index]
            appl_std=result.paradigms[name].appl_std,  # type: ignore[index]
            folder=folder,
        )
        for name, label in labels.items()
        if name in result.paradigms
    ]


def resplit(data: str, versions: int | None, target: str, count: int) -> str:
    """``data``'s versions as one ordered corpus of ``.txt`` documents, cut into ``count`` contiguous
    versions of about equal characters under ``target`` (written once; kept for a resume)."""
    store = Store(target)
    if all(store.exists(f"v{i}/{READY}") for i in range(1, count + 1)):
        return store.url
    documents: list[str] = []
    for url in version_sources(data, versions):
        source = Store(url)
        for name in sorted(source.walk_files("")):
            if name == READY:
                continue
            if not name.endswith(".txt"):
                raise CompareError(
                    f"--study versions re-splits .txt shards only; {source.url_of(name)} is not one"
                )
            documents += [d.strip() for d in source.read_text(name).split("\n\n") if d.strip()]
    if len(documents) < count:
        raise CompareError(f"{data} holds {len(documents)} documents, too few for {count} versions")
    total, acc, cuts = sum(len(d) for d in documents), 0, []
    for index, document in enumerate(documents, start=1):
        acc += len(document)
        if len(cuts) < count - 1 and acc >= total * (len(cuts) + 1) / count:
            cuts.append(index)
    while len(cuts) < count - 1:
        cuts.append(len(documents) - (count - 1 - len(cuts)))
    for j in range(count - 1):  # every version gets at least one document
        cuts[j] = min(max(cuts[j], (cuts[j - 1] if j else 0) + 1), len(documents) - (count - 1 - j))
    for i, (start, end) in enumerate(zip([0, *cuts], [*cuts, len(documents)], strict=True), start=1):
        write_version(store, f"v{i}", documents[start:end], info={"study": "versions", "of": count})
    return store.url


def _write(root: Store, study: str, points: list[StudyPoint]) -> StudyResult:
    plot_rel = layout.compare_study_file(study, ".png")
    with tempfile.TemporaryDirectory(prefix="lrpath-study-") as tmp:
        path = os.path.join(tmp, "study.png")
        if study == "versions":
            plot_versions_study(
                [p.model_dump() for p in points], path, title="relative cost and APPL against V"
            )
        elif study == "second-stage":
            plot_alpha_shape_study(
                [p.model_dump() for p in points],
                path,
                title="second-stage study: path switching's APPL per branch α and decay shape; "
                "dashed: PTFS with that shape",
            )
        else:
            plot_cost_vs_appl(
                [(p.paradigm, p.label, p.relative_cost, p.appl) for p in points],
                path,
                title=f"first-stage study: main-path LR (path switching vs {LABELS['ptfs']})",
                errors=[p.appl_std for p in points],
            )
        with open(path, "rb") as f:
            root.write_bytes(plot_rel, f.read())
    result = StudyResult(study=study, points=points, plot=root.url_of(plot_rel))
    root.write_json(layout.compare_study_file(study, ".json"), result.model_dump(mode="json"))
    return result
