"""Fixed results of every kind, for the golden report files (tests/report/golden/): built by hand, every
time and version pinned, so a render is the same on any machine and whatever the checks' wording.

`python tests/report/report_fixtures.py` rewrites the golden files from the current code (only when a
report's wording is meant to change)."""
from __future__ import annotations

import dataclasses

from pathlib import Path

from nnprobe.attacks.results import AttackSettings, FoolItem, FoolResult, Prediction, RobustPoint, RobustResult
from nnprobe.diagnosis.results import CheckOutcome, Diagnosis, Finding, RoleMapping, RunReport, SourceRead
from nnprobe.results import (EvalResult, Gate, ModelInfo, PerClass, PredictionSpread, Preprocessing, RunInfo,
                             SkippedFile)

GOLDEN = Path(__file__).resolve().parent / "golden"
FORMATS = ("table", "json", "junit", "color")
CI_FORMATS = ("markdown", "github")  # golden files of test_markdown.py / test_github.py
MODEL = ModelInfo(spec="tiny.py:net", source="factory", weights=None, architecture="TinyNet", num_classes=4,
                  preprocessing=Preprocessing(resize_size=20, crop_size=16, source="flags"),
                  published_top1=0.755, published_top5=None)
RUN = RunInfo(device="cpu", precision="fp32", world_size=1, seconds=1.25, versions={"nnprobe": "0"}, seed=0)


def eval_result(gates: tuple[Gate, ...] = ()) -> EvalResult:
    per_class = (PerClass(0, "cat", 3, 4, 5), PerClass(1, "dog [big]", 1, 3, 2), PerClass(2, "car", 0, 0, 0))
    return EvalResult(correct_top1=4, correct_top5=7, total=7, mean_loss=0.81234, converted=1,
                      skipped=(SkippedFile("val/cat/broken.jpg", "truncated image"),), per_class=per_class,
                      predictions=PredictionSpread.from_counts([5, 2, 0], ["cat", "dog [big]", "car"].__getitem__),
                      model=MODEL, data={"path": "val", "layout": "folders", "class_mapping": "names",
                                         "notes": [], "logits": "all 4 classes", "top_k": 5},
                      run=RUN, images_per_second=5.6, gates=gates)


def eval_with_findings() -> EvalResult:
    """The failing eval with everything an eval can add: calibration, confusions, ReaL, a setup finding."""
    from nnprobe.calibration import Calibration, ConfusedPair, ReliabilityBin
    from nnprobe.results import RealTop1
    from nnprobe.setup_checks import SetupFinding

    filled = {9: (3, 1 / 3, 0.62), 14: (4, 0.75, 0.97)}
    bins = tuple(ReliabilityBin(i / 15, (i + 1) / 15, *filled.get(i, (0, float("nan"), float("nan"))))
                 for i in range(15))
    finding = SetupFinding("class-permutation", "error", "A one-to-one remap of the folders would raise top-1 "
                           "from 57.1% to 100.0%.", "--class-map remap.csv", {"class_map_csv": "cat,1\ndog,0\n"})
    return dataclasses.replace(eval_result(eval_failing_gates()),
                               calibration=Calibration(0.1712, 0.81234, 0.4567, bins),
                               confused_pairs=(ConfusedPair(1, "dog [big]", 0, "cat", 2),),
                               real=RealTop1("real.json", 5, 6), setup_findings=(finding,))


def eval_gates() -> tuple[Gate, ...]:
    return (Gate("min-top1", 0.5, 4 / 7, True, "top1 0.5714 meets the required 0.5000"),
            Gate("min-top5", 1.0, 1.0, True, "top5 1.0000 meets the required 1.0000"))


def eval_failing_gates() -> tuple[Gate, ...]:
    return (Gate("min-top1", 0.75, 4 / 7, False, "top1 0.5714 is below the required 0.7500"),)


def _settings(attack: str, steps: int, eps: tuple[float, ...], targeted: bool = False) -> AttackSettings:
    return AttackSettings(attack=attack, norm="linf", eps=eps, steps=steps, step_size=tuple(e / 4 for e in eps),
                          random_start=attack == "pgd", targeted=targeted, target_index=2 if targeted else None,
                          target_label="car" if targeted else None)


def robust_result(gates: tuple[Gate, ...] = (), fp32: bool = False) -> RobustResult:
    points = (RobustPoint(0.0, 5, 7, 7, 5, 0, float("nan"), float("nan"), 0, 5 if fp32 else None, 0),
              RobustPoint(2 / 255, 3, 6, 7, 5, 2, 2 / 255, 0.1234, 70, 3 if fp32 else None, 213),
              RobustPoint(0.01, 0, 2, 7, 5, 5, 0.01, 0.5, 35, None, None))
    data = {"path": "val", "layout": "folders", "skipped": [{"path": "val/x.jpg", "reason": "empty file"}]}
    return RobustResult(points=points, settings=_settings("pgd", 10, (0.0, 2 / 255, 0.01)), model=MODEL,
                        data=data, run=RUN, plot="plot.png" if fp32 else None, gates=gates)


def robust_gates() -> tuple[Gate, ...]:
    return (Gate("min-robust-top1@2/255", 0.3, 3 / 7, True,
                 "robust top-1 at eps 2/255 is 0.4286 (3/7), meets the required 0.3000"),
            Gate("min-robust-top1@0.01", 0.2, 0.0, False,
                 "robust top-1 at eps 0.01 is 0.0000 (0/7), below the required 0.2000"))


def _item(name: str, eps: float, success: bool, before: bool, panel: bool, space: str = "image",
          check: dict | None = None) -> FoolItem:
    original = (Prediction(0, "cat", 0.9), Prediction(1, "dog [big]", 0.05), Prediction(2, "car", 0.05))
    adversarial = (Prediction(2 if success else 0, "car" if success else "cat", 0.6),
                   Prediction(1, "dog [big]", 0.3), Prediction(0 if success else 2, "cat" if success else "car", 0.1))
    return FoolItem(image=f"photos/{name}.jpg", adversarial_image=f"out/{name}.adv.png",
                    panel_image=f"out/{name}.panel.png" if panel else None, eps=eps, space=space, width=24,
                    height=20, original=original, adversarial=adversarial, success=success,
                    success_before_rounding=before, fools_eval_pipeline=(success if space == "image" else None),
                    linf=3 / 255, l2=0.04567, steps=1, seconds=0.5, precision_check=check)


def fool_result(gates: tuple[Gate, ...] = (), targeted: bool = False) -> FoolResult:
    check = {"precision": "bf16", "fp32_top1": Prediction(2, "car", 0.55), "fp32_success": True,
             "max_probability_difference": 0.0123}
    items = (_item("cat", 2 / 255, True, True, True), _item("dog", 2 / 255, False, True, True, check=check),
             _item("car", 0.0101, False, False, False, space="model"))
    return FoolResult(items=items, settings=_settings("fgsm", 1, (2 / 255, 0.0101), targeted), model=MODEL, run=RUN,
                      out_dir="out", gates=gates)


def fool_gates() -> tuple[Gate, ...]:
    return (Gate("fail-if-fooled", 0.0, 1.0, False, "1 of 3 adversarial images fool the model"),)


def diagnosis(fail_on: str = "error") -> Diagnosis:
    """Two runs: one with a failing and a warning check, a skipped one and damaged sources; one clean;
    plus probe findings, one tied to a run and one to no run."""
    nan = float("nan")
    loss = Finding("loss-not-finite", "error", "train_loss is NaN from step 315 (8 points).",
                   "Lower the learning rate.", {"step": 315, "count": 8, "values": [1, 2, 3, 4, 5, 6]}, run="nan")
    spikes = Finding("spikes", "warning", "3 spikes in train_loss.", "Clip gradients.",
                     {"steps": [10, 20, 30], "at": {"step": 10, "epoch": 1.0}}, run="nan")
    note = Finding("lr-range", "info", "The learning rate spans 3 decades.", "None needed.", {}, run="nan")
    sick = RunReport(
        path="nan", sources=(SourceRead("nan/events.out", "tensorboard", 120, 240, ("loss",),
                                        ({"kind": "crc", "offset": 12},)),
                             SourceRead("nan/empty.csv", "csv", 0, 0, (), (), "no rows")),
        ignored=(("nan/notes.txt", "not a log"),),
        mapping=(RoleMapping("train_loss", "loss", "events", 120), RoleMapping("val_acc", "acc", "csv", 10,
                                                                                "percent: divided by 100", 0.01),
                 RoleMapping("lr", None)),
        num_classes=10, num_classes_source="hparams.yaml",
        outcomes=(CheckOutcome("loss-not-finite", "Loss not finite", "flagged", findings=(loss,)),
                  CheckOutcome("spikes", "Loss spikes", "flagged", findings=(spikes, note)),
                  CheckOutcome("grad-norm", "Gradient norm", "skipped", "no grad_norm logged"),
                  CheckOutcome("run-stopped-early", "Stopped early", "skipped", "no grad_norm logged"),
                  CheckOutcome("plateau", "Plateau", "passed")),
        curves={"train_loss": (2.3, 1.5, nan, float("inf")), "val_acc": (0.1, 0.5, 0.9, 0.9)}, superseded=3)
    healthy = RunReport(path="healthy", sources=(SourceRead("healthy/metrics.csv", "csv", 50, 100, ("loss",)),),
                        ignored=(), mapping=(), num_classes=None, num_classes_source="unknown",
                        outcomes=(CheckOutcome("plateau", "Plateau", "passed"),), curves={"lr": (nan, nan)})
    extra = (Finding("constant-prediction", "warning", "The model answers 'cat' for 90% of images.",
                     "Check the labels.", {"share": 0.9}, run="model tiny on val"),
             Finding("probe-note", "info", "A note <with> & [markup].", "None.", {}, run="nan"))
    return Diagnosis(path="runs", runs=(sick, healthy), fail_on=fail_on, extra_findings=extra, seconds=0.5)


def cases() -> dict:
    """Golden name -> fixed result."""
    return {
        "eval": eval_result(), "eval-gated": eval_result(eval_gates()),
        "eval-failed": eval_with_findings(),
        "robust": robust_result(), "robust-gated": robust_result(robust_gates(), fp32=True),
        "fool": fool_result(), "fool-gated": fool_result(fool_gates(), targeted=True),
        "diagnose": diagnosis(), "diagnose-warning": diagnosis("warning"), "diagnose-never": diagnosis("never"),
    }


def rendered(result, fmt: str) -> str:
    from nnprobe.report import render

    return render(result, "table", color=True) if fmt == "color" else render(result, fmt)


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for name, result in cases().items():
        for fmt in FORMATS + CI_FORMATS:
            (GOLDEN / f"{name}.{fmt}").write_bytes(rendered(result, fmt).encode("utf-8"))


if __name__ == "__main__":
    main()
