"""The files `medshift evaluate` writes: results.json, results.md, structure_vs_realism.png, translation_grid.png.

results.md holds one row per method/setting (metrics averaged over every evaluated domain pair, and the
average rank over pairs and ranked metrics, as the paper ranks), the same for the goal pair
(sim-low -> clinical-normal) when it was evaluated, the domain classifier's accuracy on untranslated
held-out images, and the bundled model's goals beside the measured numbers.
"""
from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic_files import write_bytes_atomically
from ..io.comparison_figure import display_window
from .results import RANKED_METRICS, MethodResult, average_ranks
from .test_set import TestSet

GOAL_PAIR = ("sim-low", "clinical-normal")
GOAL_TAU = 0.6
COLUMNS = [("ssim_clean", "SSIM vs clean target", "{:.3f}"), ("psnr_clean", "PSNR (dB)", "{:.1f}"),
           ("ssim_source", "SSIM vs source", "{:.3f}"), ("classifier_accuracy", "classifier acc.", "{:.2f}"),
           ("kid", "KID", "{:.4f}"), ("coverage", "coverage", "{:.2f}"), ("nps_error", "NPS error", "{:.2f}"),
           ("nfe", "NFE", "{:.0f}"), ("seconds_per_image", "s / image", "{:.3f}")]


def _method_order(results: Sequence[MethodResult]) -> list[str]:
    seen: list[str] = []
    for r in results:
        if r.method not in seen:
            seen.append(r.method)
    return seen


def summarise(results: Sequence[MethodResult]) -> dict[str, dict[str, float]]:
    """Per method: each metric averaged over the pairs it was evaluated on, plus its average rank."""
    ranks = average_ranks(results)
    summary = {}
    for method in _method_order(results):
        rows = [r for r in results if r.method == method]
        keys = sorted({k for r in rows for k in r.metrics})
        summary[method] = {k: float(np.mean([r.metrics[k] for r in rows if k in r.metrics])) for k in keys}
        summary[method]["family"] = rows[0].family
        if method in ranks:
            summary[method]["average_rank"] = ranks[method]
    return summary


def _table(summary: dict[str, dict], with_rank: bool = True) -> list[str]:
    header = ["method"] + [title for _, title, _ in COLUMNS] + (["avg. rank"] if with_rank else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, values in summary.items():
        cells = [method] + [fmt.format(values[k]) if k in values else "—" for k, _, fmt in COLUMNS]
        if with_rank:
            cells.append(f"{values['average_rank']:.2f}" if "average_rank" in values else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _is_goal_setting(method: str) -> bool:
    """True for MedShift rows at the goal's tau, whatever their guidance and noise renewal."""
    return method.startswith("MedShift ") and f"tau={GOAL_TAU:g}" in method.split(" ")


def goal_checks(results: Sequence[MethodResult], summary: dict[str, dict]) -> list[str]:
    """Markdown lines: each goal of the bundled model, its measured value and whether it is met.

    The goal-pair goals are checked for every MedShift setting at the goal's tau (one table row each).
    """
    goal = {r.method: r for r in results if (r.source, r.target) == GOAL_PAIR}
    oracle = next((r.metrics for r in goal.values() if r.family == "oracle"), None)
    settings = [m for m in goal if _is_goal_setting(m)]
    lines = []
    if oracle is not None and settings:
        lines += [f"{GOAL_PAIR[0]} -> {GOAL_PAIR[1]} at tau={GOAL_TAU:g}; goals: SSIM vs clean target within 0.03 of "
                  f"the oracle ({oracle['ssim_clean']:.3f}), classifier accuracy >= 95 %, NPS error <= 20 %.", "",
                  "| setting | SSIM vs clean (gap) | classifier acc. | NPS error | goals met |",
                  "|---|---|---|---|---|"]
        for method in settings:
            ours = goal[method].metrics
            gap = oracle["ssim_clean"] - ours["ssim_clean"]
            met = [gap <= 0.03, ours["classifier_accuracy"] >= 0.95, ours["nps_error"] <= 0.20]
            lines.append(f"| {method} | {ours['ssim_clean']:.3f} ({gap:.3f}) | {ours['classifier_accuracy']:.0%} | "
                         f"{ours['nps_error']:.1%} | {sum(met)} of 3 |")
        lines.append("")
    ranked = {m: v["average_rank"] for m, v in summary.items() if "average_rank" in v}
    ours = {m: r for m, r in ranked.items() if summary[m]["family"] == "MedShift"}
    others = {m: r for m, r in ranked.items() if summary[m]["family"] != "MedShift"}
    if ours and others:
        best, best_other = min(ours, key=ours.get), min(others, key=others.get)
        met = ours[best] < others[best_other]
        lines.append(f"- average rank: best MedShift setting ({best}) {ours[best]:.2f}, best baseline ({best_other}) "
                     f"{others[best_other]:.2f} (goal: better than every baseline): {'met' if met else 'NOT met'}")
    return lines


def _save_figure(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomically(path, buffer.getvalue())
    return path


def plot_structure_vs_realism(summary: dict[str, dict], path: Path) -> Path:
    """Two panels (classifier accuracy and KID against SSIM vs clean target), MedShift traced over tau per w."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    groups: dict[str, list[tuple[str, dict]]] = {}
    for method, values in summary.items():
        key = " ".join(word for word in method.split(" ") if not word.startswith("tau="))
        groups.setdefault(key, []).append((method, values))
    colors = {key: f"C{i % 10}" for i, key in enumerate(groups)}  # the same colour in both panels
    for ax, metric, label in [(axes[0], "classifier_accuracy", "domain-classifier accuracy (realism, higher better)"),
                              (axes[1], "kid", "KID on classifier features (realism, lower better)")]:
        for key, members in groups.items():
            xs = [v["ssim_clean"] for _, v in members if metric in v]
            ys = [v[metric] for _, v in members if metric in v]
            if not xs:
                continue
            style = "o-" if len(xs) > 1 else ("*" if members[0][1]["family"] == "oracle" else "s")
            ax.plot(xs, ys, style, label=key, color=colors[key], markersize=9 if style == "*" else 6)
            for method, v in members:
                if " tau=" in method and metric in v:
                    ax.annotate(method.split(" tau=")[1].split(" ")[0], (v["ssim_clean"], v[metric]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
        ax.set_xlabel("SSIM vs noise-free target (structure, higher better)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("Structure vs realism, averaged over domain pairs (labels: tau)")
    path = _save_figure(fig, path)
    plt.close(fig)
    return path


def translation_grid(results: Sequence[MethodResult], test: TestSet, domains: Sequence[str], method: str,
                     path: Path) -> Path | None:
    """Rows = source, columns = target, first test view; the diagonal shows the untranslated source."""
    from PIL import Image, ImageDraw

    by_pair = {(r.source, r.target): r.example for r in results if r.method == method}
    if not by_pair:
        return None
    size, caption = test.images[domains[0]].shape[1], 18
    n = len(domains)
    canvas = Image.new("L", (caption * 6 + n * size, caption + n * size), 255)
    draw = ImageDraw.Draw(canvas)
    for j, target in enumerate(domains):
        draw.text((caption * 6 + j * size + 4, 3), f"-> {target}", fill=0)
    for i, source in enumerate(domains):
        draw.text((3, caption + i * size + size // 2), source, fill=0)
        for j, target in enumerate(domains):
            image = test.images[source][0] if source == target else by_pair.get((source, target))
            if image is None:
                continue
            tile = Image.fromarray(display_window(np.clip(image, -1.2, 1.2)))
            canvas.paste(tile, (caption * 6 + j * size, caption + i * size))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    write_bytes_atomically(path, buffer.getvalue())
    return path


def write_report(out_dir: Path, results: Sequence[MethodResult], test: TestSet, domains: Sequence[str],
                 pairs: Sequence[tuple[str, str]], classifier_accuracy: float, confusion: np.ndarray,
                 settings, ddib_paths: dict[str, str] | None = None) -> dict:
    """Write every output file; returns the JSON summary (`ddib_paths`: the DDIB models used, by domain)."""
    summary = summarise(results)
    goal_summary = summarise([r for r in results if (r.source, r.target) == GOAL_PAIR])
    record = {
        "views": len(test.names), "pairs": [list(p) for p in pairs], "domains": list(domains),
        "classifier_accuracy_untranslated": classifier_accuracy, "classifier_confusion": confusion.tolist(),
        "settings": {"taus": list(settings.taus), "guidance_scales": list(settings.guidance_scales),
                     "solver": settings.solver, "steps": settings.steps, "schedule": settings.schedule,
                     "noise_renewals": list(settings.noise_renewals),
                     "contrast_transfers": list(settings.contrast_transfers),
                     "noise_matchings": list(settings.noise_matchings), "seed": settings.seed,
                     "ddib_taus": list(settings.ddib_taus) if ddib_paths else [], "ddib_models": ddib_paths or {}},
        "summary": summary, "goal_pair": goal_summary,
        "per_pair": [{"method": r.method, "source": r.source, "target": r.target, **r.metrics} for r in results],
    }
    write_bytes_atomically(out_dir / "results.json", json.dumps(record, indent=1).encode())
    lines = ["# MedShift evaluation", "",
             f"{len(test.names)} held-out aligned views per domain, {len(pairs)} ordered domain pair(s), "
             f"solver {settings.solver} with {settings.steps} steps per leg ({settings.schedule} time grid). "
             "Metrics are means over the pairs; "
             f"the average rank is over pairs and the ranked metrics ({', '.join(RANKED_METRICS)}); the oracle "
             "(the real noisy target rendering) is the ceiling and is not ranked.", "",
             f"Domain classifier accuracy on untranslated held-out images: {classifier_accuracy:.3f} "
             "(rows: true domain, columns: predicted; order " + ", ".join(domains) + "):", "",
             "```", *[" ".join(f"{v:4d}" for v in row) for row in confusion], "```", "",
             "## All pairs", "", *_table(summary)]
    if goal_summary:
        lines += ["", f"## {GOAL_PAIR[0]} -> {GOAL_PAIR[1]}", "", *_table(goal_summary)]
    checks = goal_checks(results, summary)
    if checks:
        lines += ["", "## Goals", "", *checks]
    lines += ["", "![structure vs realism](structure_vs_realism.png)", "",
              "![translation grid](translation_grid.png)", ""]
    write_bytes_atomically(out_dir / "results.md", "\n".join(lines).encode())
    plot_structure_vs_realism(summary, out_dir / "structure_vs_realism.png")
    grid_method = f"MedShift tau={GOAL_TAU:g}" if f"MedShift tau={GOAL_TAU:g}" in summary else next(
        (m for m, v in summary.items() if v["family"] == "MedShift"), None)
    if grid_method:
        translation_grid(results, test, domains, grid_method, out_dir / "translation_grid.png")
    return record
