"""The benchmark's report: means over hand tracks, the ratios to the per-frame estimate against issue
11's targets, and the markdown page (`--out`)."""

from collections.abc import Callable

import numpy as np

from engine.evaluation.methods import table

# not a method: the truth itself, Gaussian-smoothed over SMOOTH_SIGMA frames, scored against the truth.
# What any temporally smooth output loses on this motion (a floor for RA-ACC on jerky recordings)
REFERENCE = "(reference: truth smoothed)"
SMOOTH_SIGMA = 2.0
RATIO_TITLE = "Ratios to the per-frame estimate, all hand tracks"  # the ratio table's title on the page
# issue 11's targets: (method, metric) -> at most this ratio to the per-frame estimate's
TARGETS = {("stage II", "PA-MPJPE"): 0.8, ("stage II", "RA-MPJPE"): 1.0, ("stage II", "camera MPJPE"): 1.0,
           ("stage II", "RA-ACC"): 0.3, ("stage II", "wrist acc."): 0.4, ("stage I", "wrist acc."): 0.6}


def ratios(rows: dict[str, dict[str, float]]) -> tuple[list[str], list[str]]:
    """Lines: stage I and stage II over the per-frame estimate, each metric, and issue 11's targets."""
    from engine.evaluation.metrics import METRICS

    base = rows["per-frame"]
    lines = ["| ratio to per-frame | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for meth in ("stage I", "stage II"):
        cells = []
        for k in METRICS:
            r = rows[meth][k] / base[k] if base[k] > 0 else float("nan")
            t = TARGETS.get((meth, k))
            cells.append(f"{r:.2f}x" + (f" (<= {t:g}x: {'met' if r <= t else 'NOT met'})" if t else ""))
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    verdict = ["Targets (issue 11, all hand tracks):", ""]
    for (m, k), t in TARGETS.items():
        r = rows[m][k] / base[k]
        verdict.append(f"- {m} / per-frame, {k}: {r:.2f}x (target at most {t:g}x): "
                       f"{'target met' if r <= t else 'target not met'}")
    return lines, verdict


def mean_over_tracks(tracks: list[tuple[str, bool, dict]], methods: tuple[str, ...],
                     use: Callable[[bool], bool] = lambda occluded: True) -> dict[str, dict[str, float]]:
    """{method: {metric: mean}} over the hand tracks ``(label, occluded, rows)`` that ``use`` keeps."""
    from engine.evaluation.metrics import METRICS

    sel = [rows for _, occ, rows in tracks if use(occ)]
    return {m: {k: float(np.mean([r[m][k] for r in sel])) for k in METRICS} for m in methods + (REFERENCE,)}


def report_text(header: list[str], tracks: list[tuple[str, bool, dict]], notes: list[str],
                methods: tuple[str, ...]) -> str:
    """The markdown page: ``header`` (paragraphs before the notes), each clip's notes, the mean table
    over all hand tracks, the ratios and targets, the occlusion subset, then one table per track."""
    everything = mean_over_tracks(tracks, methods)
    ratio_lines, verdict = ratios(everything)
    parts = [*header, "", *notes, "", table(everything, "All hand tracks"), "",
             f"**{RATIO_TITLE}**", "", *ratio_lines, "", *verdict]
    if any(occ for _, occ, _ in tracks):
        parts += ["", table(mean_over_tracks(tracks, methods, lambda occ: occ), "Occlusion subset")]
    for label, _, rows in tracks:
        parts += ["", table(rows, label)]
    return "\n".join(parts) + "\n"
