"""What each result kind does with each field of its dataclass, said once per field so a new field cannot be
half-wired: how `merge` adds it up over slices (MERGE), what `compare` reads from it (COMPARE), and which
fields only the JSON carries (JSON_ONLY: the table, markdown, JUnit and GitHub reports are summaries).
tests/report/test_kind_fields.py walks every field of every result dataclass against these tables and
against the real merge, compare and renderers. A path names nested fields with dots (`model.spec`); a path
covers everything under it.
"""
from __future__ import annotations

PROVENANCE = "provenance for tools (which model, weights, preprocessing, versions, seed); the reports name the model"
GATE_NUMBERS = "the gate's message says the threshold and the measurement in words"

JSON_ONLY: dict[str, dict[str, str]] = {
    "eval": {
        "model": PROVENANCE, "run.versions": PROVENANCE, "run.seed": PROVENANCE,
        "data": "where the images came from and how they were labelled: for tools and merge",
        "gates.threshold": GATE_NUMBERS, "gates.measured": GATE_NUMBERS,
        "per_class.predicted": "summarised by the prediction spread (most predicted class and its share)",
        "predictions.most_predicted": "the reports name the class", "predictions.entropy_nats": "for tools",
        "calibration.bins": "drawn by the reliability diagram (--plot)",
        "confused_pairs.true_index": "the reports name the classes",
        "confused_pairs.predicted_index": "the reports name the classes",
        "real.labels": "the --real-labels file the user gave",
        "variant.name": "the reports name the variant by its title",
        "setup_findings.evidence": "machine-readable evidence; the message says it in words",
        "calibration_suite.confidence_level": "the result's confidence_level, named in the interval note",
        "calibration_suite.ece.value": "the same number as calibration.ece, shown from there",
        "calibration_suite.nll.value": "the same number as calibration.nll, shown from there",
        "calibration_suite.brier.value": "the same number as calibration.brier, shown from there",
        **{f"calibration_suite.{name}.method": "the same bootstrap as NLL's, named in the interval note"
           for name in ("ece", "brier", "smooth_ece", "aurc")},
        "calibration_suite.smooth_ece_bandwidth": "for tools: the fixed point sigma* (equal to smooth ECE)",
        "calibration_suite.resamples": "named in the interval note (the bootstrap's method)",
        "calibration_suite.seed": "named in the interval note (the bootstrap's method)",
        "calibration_sums": "a --shard slice's class-wise and temperature tallies, for merge",
        "parity.confidence_level": "the result's confidence_level, named in the sentence",
        "parity.top1_changed_paths": "the first five are shown; the JSON lists twenty",
        "parity.right_to_wrong_paths": "the first five are shown; the JSON lists twenty",
        "parity.wrong_to_right_paths": "the first five are shown; the JSON lists twenty",
        "parity.top5_changed_paths": "the first five are shown; the JSON lists twenty",
    },
    "robust": {
        "model": PROVENANCE, "run.versions": PROVENANCE, "run.seed": PROVENANCE,
        "data": "where the images came from: for tools and merge",
        "settings.eps": "each point shows its eps", "settings.step_size": "attack detail for reproduction",
        "settings.components": "the component attacks as run, for reproduction",
        "settings.target_index": "robust attacks are untargeted", "settings.target_label": "untargeted",
        "gates.threshold": GATE_NUMBERS, "gates.measured": GATE_NUMBERS,
        "sanity": "raw counts behind the findings, summed by merge",
        "findings.evidence": "machine-readable evidence; the message says it in words",
        "points.gradient_passes": "the attack's own work count (gradient passes, Square's queries); the table "
                                  "shows the hardware-free cost per image",
    },
    "corruption": {
        "model": PROVENANCE, "run.versions": PROVENANCE, "run.seed": PROVENANCE,
        "data": "where the images came from: for tools and merge",
        "clean.correct_top5": "the reports compare top-1", "points.correct_top5": "the reports compare top-1",
        "gates.threshold": GATE_NUMBERS, "gates.measured": GATE_NUMBERS,
        "verdicts": "a --shard part's per-image top-1 bits, for merge to resample the whole",
        "bootstrap.mean_corruption_top1.value": "the same number as mean_corruption_top1, shown from there",
        "settings.bootstrap_resamples": "named in the interval note (the bootstrap's method)",
        "perturbation_baseline.perturbations": "the baseline model's counts: the reports show the ratios to them",
    },
    "fool": {
        "model": PROVENANCE, "run.versions": PROVENANCE, "run.seed": PROVENANCE,
        "settings.eps": "each image's row shows its eps", "settings.step_size": "attack detail for reproduction",
        "settings.random_start": "attack detail for reproduction", "settings.early_stop": "attack detail",
        "settings.components": "attack detail for reproduction",
        "settings.target_index": "shown when the attack is targeted (settings.targeted)",
        "settings.target_label": "shown when the attack is targeted (settings.targeted)",
        "items.success_before_rounding": "the table says when rounding undid the attack (derived)",
        "out_dir": "the images' own paths are shown",
        "gates.threshold": GATE_NUMBERS, "gates.measured": GATE_NUMBERS,
    },
    "diagnose": {
        "runs.sources.series": "the series names found, for tools", "runs.mapping.source": "for tools",
        "runs.mapping.points": "for tools", "runs.mapping.note": "for tools", "runs.mapping.scale": "for tools",
        "runs.outcomes.title": "in no report (the JSON names checks by id): kept for library callers",
        "runs.outcomes.reason": "the reports count skipped checks; the JSON says why each was skipped",
        "runs.superseded": "points replaced by restarts, for tools",
    },
    "variants": {
        "model": PROVENANCE, "run.versions": PROVENANCE, "run.seed": PROVENANCE,
        "gates.threshold": GATE_NUMBERS, "gates.measured": GATE_NUMBERS,
        "rows.classes": "the protocol's words name the classes (the all-classes column is empty for 1000-way rows)",
        "rows.real": "the protocol's words name the ReaL labels (the real row's top-1 and top-5 are ReaL's)",
    },
    "compare": {
        "same_data": "the notes say when the data differ", "paired": "the flips sections show it",
        "points.baseline_correct": "shown for robust comparisons (as top-1)",
        "points.baseline_total": "shown for robust comparisons (as top-1)",
        "points.candidate_correct": "shown for robust comparisons (as top-1)",
        "points.candidate_total": "shown for robust comparisons (as top-1)",
        "fell_earlier_paths": "the count is shown; the paths are for tools",
        "unchanged": "findings that did not change: counted in the reports, listed in the JSON",
        "new.baseline_severity": "empty for a new finding (FindingChange is shared with changed ones)",
        "gone.baseline_severity": "empty for a gone finding (FindingChange is shared with changed ones)",
        "gates.threshold": GATE_NUMBERS, "gates.measured": GATE_NUMBERS,
        "options": "the gates as given, for tools",
        "metrics.interval.value": "the delta itself, shown beside its interval",
    },
}

# a many-model eval shows each model's eval report whole: what eval keeps to the JSON, it does too
JSON_ONLY["eval-models"] = {f"runs.{path}": why for path, why in JSON_ONLY["eval"].items()}
JSON_ONLY["eval-models"]["names"] = ("each report shows a name beside its run's row; the list itself (one name per "
                                     "run) is for tools")

# Fields in no report at all, JSON included (each a gap someone chose to keep, with the reason).
NOT_REPORTED: dict[str, dict[str, str]] = {
    "diagnose": {"runs.outcomes.title": "a check's human title; every report names checks by their stable id "
                                        "(adding it to the JSON would change every diagnose report)"},
}

_SUMMED = "summed over the slices"
_SAME = "the same in every slice (check_slices refuses slices that differ)"
_RUN = "how the slices ran: world sizes summed, the slowest slice's seconds"
_GATES = "applied to the whole by merge, never to a slice"
_ROWS = "from the slices' per-sample files when merged with --save-predictions"

MERGE: dict[str, dict[str, str]] = {
    "eval": {
        "correct_top1": _SUMMED, "correct_top5": _SUMMED, "total": _SUMMED, "converted": _SUMMED,
        "mean_loss": "re-weighted by the slices' image counts", "skipped": "the union of the slices' skips",
        "per_class": "summed class by class", "predictions": "re-derived from the summed per-class predictions",
        "model": _SAME, "data": _SAME + ", less the slice; data.slices: each slice's own counts", "run": _RUN,
        "images_per_second": "images over the slowest slice's seconds", "gates": _GATES, "per_sample": _ROWS,
        "calibration": "combined from the slices' bins", "confused_pairs": _ROWS, "real": _SUMMED,
        "variant": "its counts (all-classes top-1, total, excluded) summed; the protocol the same in every slice",
        "setup_findings": "judged on a whole run only: none after a merge",
        "comparison": "a --shard slice cannot have one (--baseline is refused with --shard)",
        "samples": "in memory only", "confidence_level": _SAME,
        "parity": "a --shard slice cannot have one (--reference-model is refused with --shard)",
        "calibration_suite": "the whole's (calibration_merge.py): with the slices' per-sample rows (--save-predictions) "
                             "every number and interval as one process; without them equal-width ECE, MCE, RMSCE, "
                             "NLL, Brier, class-wise ECE and the temperature from the summed tallies, the rest null "
                             "and named in `missing`",
        "calibration_sums": "summed over the slices into the suite, then dropped: the merged whole is no slice",
    },
    "robust": {
        "points": "per eps, counts summed and mean norms re-weighted", "settings": _SAME, "model": _SAME,
        "data": _SAME + ", skips united; data.slices: each slice's own counts", "run": _RUN, "plot": _SAME,
        "gates": _GATES, "per_sample": _ROWS,
        "samples": "in memory only", "findings": "re-derived from the summed sanity counts",
        "comparison": "a --shard slice cannot have one",
        "median_min_eps": _ROWS + " (read for --min-norm too)",
        "sanity": "counts summed, example ids the first in data order, largest difference the largest",
        "confidence_level": _SAME,
        "min_norm": "recomputed from the slices' per-sample distances (counts, quantiles, median, curve), passes "
                    "summed",
    },
    "corruption": {
        "clean": _SUMMED, "points": "per (corruption, severity), counts summed", "settings": _SAME, "model": _SAME,
        "data": _SAME + ", skips united; data.slices: each slice's own counts", "run": _RUN, "plot": _SAME,
        "gates": _GATES,
        "perturbations": "per ImageNet-P perturbation, flips, compared frames and top-5 distances summed",
        "confidence_level": _SAME,
        "bootstrap": "resampled from the slices' per-image verdicts joined in data order (as one process does)",
        "verdicts": "joined in data order for the bootstrap, then dropped: the merged whole is no slice",
        "perturbation_baseline": "the same in every slice (check_slices refuses slices whose baselines differ) or "
                                 "merge's --perturbation-baseline; its frame counts checked against the summed ones",
    },
}

COMPARE: dict[str, dict[str, str]] = {
    "eval": {
        "correct_top1": "top-1 delta and drop gate", "correct_top5": "top-5 delta and drop gate",
        "total": "the denominators", "mean_loss": "loss delta", "per_class": "class deltas and --max-class-drop",
        "calibration": "ECE delta", "per_sample": "paired flips and McNemar", "data": "the data fingerprint",
        "run": "versions named in a note when they differ",
        "skipped": "not compared: the fingerprint and rows say which images were used",
        "converted": "not compared: a decoding detail", "predictions": "not compared: per_class carries it",
        "model": "not compared: comparing two models is the point", "images_per_second": "not compared: speed",
        "gates": "not compared: each run's own thresholds", "confused_pairs": "not compared: rows carry it",
        "real": "not compared", "setup_findings": "not compared", "comparison": "not compared",
        "variant": "not compared: top-1 is the protocol's number, and the data fingerprint says the data differ",
        "samples": "rows of a result just computed (--baseline)",
        "confidence_level": "not compared: the delta intervals use the comparison's own level",
        "calibration_suite": "not compared: the ECE and loss deltas are bootstrapped from the paired rows",
        "calibration_sums": "not compared: merge's input (a --shard slice cannot be compared: --baseline is refused)",
        "parity": "not compared: each run's own --reference-model",
    },
    "robust": {
        "points": "robust top-1/top-5 per matched eps and the drop gates", "per_sample": "flips per eps",
        "data": "the data fingerprint", "run": "versions named in a note when they differ",
        "settings": "not compared: two attacks may be compared on purpose", "model": "not compared",
        "plot": "not compared", "gates": "not compared", "samples": "rows of a result just computed",
        "findings": "not compared", "comparison": "not compared", "median_min_eps": "not compared",
        "sanity": "not compared", "confidence_level": "not compared: the delta intervals use the comparison's own level",
        "min_norm": "not compared: each run's own distances",
    },
    "diagnose": {
        "runs": "findings matched on (id, run); summaries and same-epoch (else same-step) values from the run folders",
        "extra_findings": "matched with the runs' findings", "path": "names the side",
        "fail_on": "not compared: the candidate's gate is no-new-errors",
        "seconds": "not compared", "comparison": "not compared",
    },
}
