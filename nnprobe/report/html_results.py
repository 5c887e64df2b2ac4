"""The "html" pieces of eval, robust, corruption and fool results (see report/html.py): numbers in tables, the
`--plot` figures inline beside them, per-class, per-eps, per-corruption and per-image drill-downs in
`<details>`."""
from __future__ import annotations

from typing import Any

from nnprobe.report.html import (Html, card, details, dl, figure, gates, header, model_pairs, para, run_header,
                                 run_pairs, section, skipped, table, tag)
from nnprobe.report.html_slices import slices_section
from nnprobe.report.markdown import pct
from nnprobe.results import format_eps

PANEL_BYTES = 8 * 1024 * 1024  # a fool panel larger than this is linked by name, not inlined


def _subject(result: Any) -> str:
    return f"{result.model.spec} on {result.data.get('path')}"


def _note(result: Any) -> str:
    return "" if result.gates else "no gates"


# ---- eval -------------------------------------------------------------------------------------------


def eval_html(result: Any) -> list[Html]:
    from nnprobe.report.eval_rows import HEADERS, interval_note, metric_rows, parity_lines, variant_line

    variant = [para(variant_line(result), cls="note")] if result.variant is not None else []
    parts = [run_header("eval", result, _subject(result), _note(result)),
             section("Accuracy", table(HEADERS, metric_rows(result), right=(1, 2, 3, 4)), para(interval_note(result),
                                                                                               cls="note"), *variant),
             gates(result.gates)]
    if result.parity is not None:
        parts.append(section("Against the reference model", *(para(line.strip()) for line in parity_lines(result))))
    if result.setup_findings:
        parts.append(section("Set-up findings", *(
            card(f.severity, f.id, f.message, f.fix, {k: v for k, v in f.evidence.items() if k != "class_map_csv"},
                 tag("pre", f.evidence["class_map_csv"]) if "class_map_csv" in f.evidence else "")
            for f in result.setup_findings)))
    parts += [_eval_figures(result), _classes(result), slices_section("eval", result), skipped(result.skipped),
              section("How it was run", dl(model_pairs(result.model) + _data_pairs(result) + run_pairs(
                  result.run, [("images/s", f"{result.images_per_second:.1f}")])))]
    return parts


def _eval_figures(result: Any) -> Html:
    from nnprobe.report.eval_plots import per_class_figure, reliability_figure

    spec = result.model.spec
    shown = []
    if result.calibration is not None:
        shown.append(figure(lambda: reliability_figure(result.calibration, title=f"{spec}: reliability"),
                            "reliability diagram: accuracy per confidence bin against the diagonal"))
    if any(c.total for c in result.per_class):
        shown.append(figure(lambda: per_class_figure(result.per_class, title=f"{spec}: top-1 per class"),
                            "top-1 per class: the worst and the best classes"))
    return section("Figures", tag("div", *shown, cls="figures")) if shown else Html("")


def _classes(result: Any) -> Html:
    """The most confused pairs, then every class in a drill-down (worst first)."""
    from nnprobe.intervals import clopper_pearson
    from nnprobe.report.eval_rows import span

    parts = []
    if result.confused_pairs:
        rows = ((f"{p.true_name} ({p.true_index})", f"{p.predicted_name} ({p.predicted_index})", p.count)
                for p in result.confused_pairs)
        parts.append(tag("h3", "Most confused"))
        parts.append(table(("true class", "predicted as", "images"), rows, right=(2,), total=len(result.confused_pairs)))
    labelled = sorted((c for c in result.per_class if c.total), key=lambda c: (c.top1, c.index))
    rows = ((c.index, c.name, pct(c.top1), span(clopper_pearson(c.correct_top1, c.total, result.confidence_level)),
             f"{c.correct_top1}/{c.total}", c.predicted) for c in labelled)
    parts.append(details(f"Per class: {len(labelled)} classes with images, worst first",
                         table(("index", "class", "top-1", "interval", "count", "predicted as this class"), rows,
                               right=(0, 2, 3, 4, 5), total=len(labelled), noun="classes"),
                         opened=len(labelled) <= 20))
    return section("Classes", *parts)


def _data_pairs(result: Any) -> list[tuple[str, Any]]:
    data = result.data
    pairs = [("data", f"{data.get('path')} [{data.get('layout')}]"), ("logits", data.get("logits")),
             ("converted to RGB", result.converted)]
    if "shard" in data:
        shard = data["shard"]
        pairs.append(("slice", f"{shard['index']}/{shard['count']} ({shard['images']} images, a partial result)"))
    if "merged_from" in data:
        pairs.append(("merged from", f"{data['merged_from']} slices"))
    pairs += [("note", note) for note in data.get("notes", [])]
    spread = result.predictions
    return pairs + [("predictions", f"{spread.distinct_classes} distinct classes, most frequent "
                                    f"{spread.most_predicted_name} ({100 * spread.most_predicted_share:.1f}%)")]


# ---- robust -----------------------------------------------------------------------------------------


def _attack(settings: Any) -> str:
    steps = f", {settings.steps} steps" if settings.steps > 1 else ""
    target = f", target {settings.target_label} ({settings.target_index})" if settings.targeted else ""
    return f"{settings.attack} ({settings.norm}{steps}{target}{', random start' if settings.random_start else ''})"


def robust_html(result: Any) -> list[Html]:
    from nnprobe.report.plots import accuracy_figure

    s = result.settings
    from nnprobe.report.eval_rows import ROBUST_HEADERS, robust_interval_note, robust_rows

    numbers = tag("div", table(ROBUST_HEADERS, robust_rows(result), right=(0, 1, 2, 3, 4, 5), total=len(result.points),
                               noun="budgets"), para(robust_interval_note(result)))
    median = para(f"median smallest fooling budget on this grid: {format_eps(result.median_min_eps)}") \
        if result.median_min_eps is not None else Html("")
    shown = figure(lambda: accuracy_figure(result), "robust top-1 and top-5 against eps") if result.points else ""
    parts = [run_header("robust", result, f"{result.model.spec}: {_attack(s)}", _note(result)),
             section("Robust accuracy per budget", tag("div", tag("div", numbers, median), shown, cls="evidence")),
             gates(result.gates), *_min_norm(result)]
    if result.findings:
        parts.append(section("Sanity checks that fired", *(card(f.severity, f.id, f.message, f.hint, f.evidence)
                                                           for f in result.findings)))
    parts.append(section("Per budget", *(details(f"eps {format_eps(p.eps)}: robust top-1 {pct(p.top1)} "
                                                 f"({p.correct_top1}/{p.total})", dl(_point_pairs(p)))
                                         for p in result.points)))
    components = [f"{c.get('attack')}: " + ", ".join(f"{k} {v}" for k, v in c.items() if k != "attack")
                  for c in getattr(s, "components", ()) or ()]
    parts += [slices_section("robust", result), skipped(result.data.get("skipped", [])),
              section("How it was run", dl(model_pairs(result.model) + [
                  ("attack", _attack(s)), ("eps", ", ".join(format_eps(e) for e in s.eps)),
                  *(("component", c) for c in components), ("early stop", "on" if s.early_stop else "off"),
                  *_binarization_pair(s), ("data", result.data.get("path")), *_plot_pair(result)] + run_pairs(result.run)))]
    return parts


def _binarization_pair(settings: Any) -> list[tuple[str, str]]:
    """`--binarization-test`: its inner points per sample (robust_table says the same)."""
    inner = getattr(settings, "binarization_inner_points", None)
    return [] if inner is None else [("binarization test", f"{inner} inner points per sample")]


def _min_norm(result: Any) -> list[Html]:
    """`--min-norm`: the distances' summary and the robust top-1 they imply (robust_table says the same)."""
    if getattr(result, "min_norm", None) is None:
        return []
    from nnprobe.report.min_norm_text import curve_rows, summary

    headers, rows = curve_rows(result)
    return [section("Minimum-norm distances", *(para(line) for line in summary(result.min_norm)),
                    table(headers, rows, right=tuple(range(len(headers))), total=len(rows), noun="budgets"))]


def _point_pairs(p: Any) -> list[tuple[str, Any]]:
    pairs = [("robust top-1", f"{pct(p.top1)} ({p.correct_top1}/{p.total})"),
             ("robust top-5", f"{pct(p.top5)} ({p.correct_top5}/{p.total})"),
             ("right before the attack", f"{p.clean_correct}/{p.total}"),
             ("fooled (of those)", f"{p.fooled} ({pct(p.attack_success_rate)})"),
             ("mean L∞ of δ", f"{p.mean_linf:.4g}"), ("mean L2 of δ", f"{p.mean_l2:.4g}"),
             ("gradient passes", p.gradient_passes),
             ("cost per image (passes through the model: a forward 1, a backward 2)",
              "—" if p.cost_per_image is None else f"{p.cost_per_image:.1f} ({p.cost} in all)")]
    if p.fp32_correct_top1 is not None:
        pairs.append(("robust top-1 judged in fp32", f"{p.fp32_correct_top1}/{p.total}"))
    return pairs


# ---- robust --corruptions ---------------------------------------------------------------------------


def corruption_html(result: Any) -> list[Html]:
    from nnprobe.report.corruption_plot import corruption_figure
    from nnprobe.report.corruption_table import _mce_line, interval_note, mean_words

    s = result.settings
    summary = para(f"clean top-1 {pct(result.clean.top1)} ({result.clean.correct_top1}/{result.clean.total}), "
                   f"{mean_words(result)}, relative drop {pct(result.relative_drop)}. {_mce_line(result)} "
                   f"{interval_note(result)}.")
    family: dict[str, str] = {}
    for p in result.points:
        family.setdefault(p.corruption, p.family)
    rows = ((name, family.get(name, ""), *(pct(result.top1(name, v)) for v in s.severities), pct(mean))
            for name, mean in result.per_corruption.items())
    grid = table(("corruption", "family", *(f"severity {v}" for v in s.severities), "mean"), rows,
                 right=tuple(range(2, len(s.severities) + 3)), total=len(result.per_corruption), noun="corruptions")
    shown = figure(lambda: corruption_figure(result), "top-1 per corruption and severity") if result.points else ""
    drill = [details(f"{name}: mean top-1 {pct(result.per_corruption[name])}",
                     table(("severity", "top-1", "count", "top-5"),
                           ((p.severity, pct(p.top1), f"{p.correct_top1}/{p.total}", pct(p.top5))
                            for p in result.points if p.corruption == name), right=(0, 1, 2, 3)))
             for name in s.corruptions]
    jpeg = [("JPEG round trip", f"quality {s.jpeg_roundtrip}")] if getattr(s, "jpeg_roundtrip", None) else []
    moved = _perturbation_section(result) if result.perturbations else []
    return [run_header("robust --corruptions", result, _subject(result), _note(result)),
            section("Corruption accuracy", summary, tag("div", grid, shown, cls="evidence")), gates(result.gates),
            section("Per corruption", *drill), *moved, slices_section("corruption", result),
            section("How it was run", dl(model_pairs(result.model) + jpeg + [
                ("corruptions", f"{' and '.join(s.benchmarks)}, computed on the device at the model's input size, parameters of {s.reference}, "
                                f"seed {s.seed}"), ("data", result.data.get("path")), *_plot_pair(result)]
                + run_pairs(result.run)))]


def _perturbation_section(result: Any) -> list[Html]:
    """ImageNet-P's table, with each FP and T5D over the baseline model's when one was given, and the means."""
    from nnprobe.report.perturbation_text import frames_note, perturbation_summary, ratio_cells, ratio_columns

    extra = ratio_columns(result)
    rows = ((p.perturbation, pct(p.flip_probability), f"{p.flips}/{p.comparisons}",
             f"{p.top5_distance:.3f} ({p.top5_distance_sum}/{p.comparisons})",
             *ratio_cells(result, p.perturbation)) for p in result.perturbations)
    return [section("ImageNet-P: flips along each perturbation sequence", table(
        ("perturbation", "flip probability", "flips / compared frames", "top-5 distance", *extra), rows,
        right=tuple(range(1, 4 + len(extra))), total=len(result.perturbations),
        noun="perturbations"), para(perturbation_summary(result)),
        *(para(line) for line in frames_note(result)))]


def _plot_pair(result: Any) -> list[tuple[str, Any]]:
    """The --plot file, and which slice a --shard result is or how many slices `nnprobe merge` added up."""
    data = result.data
    pairs = [("plot", result.plot)] if result.plot else []
    if "shard" in data:
        shard = data["shard"]
        pairs.append(("slice", f"{shard.get('index')}/{shard.get('count')} (a partial result)"))
    return pairs + ([("merged from", f"{data['merged_from']} slices")] if "merged_from" in data else [])


# ---- fool -------------------------------------------------------------------------------------------


def fool_html(result: Any) -> list[Html]:
    items = sorted(result.items, key=lambda i: not i.success)  # fooled images first
    rows = ((i.image, format_eps(i.eps), f"{i.original[0].label} ({i.original[0].index})",
             f"{i.adversarial[0].label} ({i.adversarial[0].index})", "yes" if i.success else "no") for i in items)
    return [header("fool", result.passed, f"{result.model.spec}: {_attack(result.settings)}", _note(result)),
            section(f"{result.fooled} of {len(result.items)} adversarial images fool the model",
                    table(("image", "eps", "original", "adversarial (PNG re-read)", "fooled"), rows, right=(1,),
                          total=len(items), noun="images")),
            gates(result.gates),
            section("Per image", *(details(f"{i.image} at eps {format_eps(i.eps)}: "
                                           f"{'fooled' if i.success else 'not fooled'}", *_item(i), opened=i.success)
                                   for i in items)),
            section("How it was run", dl(model_pairs(result.model) + [("written to", result.out_dir)]
                                         + run_pairs(result.run)))]


def _item(item: Any) -> list[Html]:
    rows = ((rank + 1, f"{o.label} ({o.index})", pct(o.confidence), f"{a.label} ({a.index})", pct(a.confidence))
            for rank, (o, a) in enumerate(zip(item.original, item.adversarial)))
    pairs = [("adversarial image", item.adversarial_image), ("size", f"{item.width}x{item.height}"),
             ("space", item.space), ("seconds", f"{item.seconds:.2f}"),
             ("L∞ / L2 of δ", f"{item.linf:.4g} / {item.l2:.4g}"), ("steps", item.steps),
             ("fooled before rounding to 8 bits", "yes" if item.success_before_rounding else "no")]
    if item.fools_eval_pipeline is not None:
        pairs.append(("fools the model's own preprocessing", "yes" if item.fools_eval_pipeline else "no"))
    if item.precision_check:
        check = item.precision_check
        pairs.append(("fp32 re-check", f"{check['fp32_top1'].label} ({pct(check['fp32_top1'].confidence)}), "
                                       f"fooled in fp32: {'yes' if check['fp32_success'] else 'no'}"))
    return [table(("rank", "original", "p", "adversarial", "p"), rows, right=(0, 2, 4)), dl(pairs),
            _panel(item.panel_image)]


def _panel(path: str | None) -> Html:
    """The image | perturbation | adversarial panel fool wrote, inlined (a regular PNG file only)."""
    import base64

    from nnprobe.io import open_regular

    if not path:
        return Html("")
    try:
        with open_regular(path, PANEL_BYTES) as handle:
            data = handle.read(PANEL_BYTES + 1)
    except OSError:
        return para(f"panel {path}: not readable now", cls="note")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return para(f"panel {path}: not a PNG file", cls="note")
    from nnprobe.report.escaping import html_text

    return Html(f'<figure><img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" '
                f'alt="{html_text(path)}"><figcaption>{html_text(path)}</figcaption></figure>')
