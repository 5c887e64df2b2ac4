"""One filled result of every result kind (nnprobe.kinds.KINDS), for the tests that walk kinds, formats and
fields: the golden report fixtures, plus a corruption sweep and a comparison built here by hand. `poisoned`
puts hostile text into every string a result carries."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

import report_fixtures as fixtures
from nnprobe.attacks.results import MinNormDistribution, MinNormPoint, RobustFinding, RobustSettings
from nnprobe.comparison.results import ClassDelta, Comparison, EpsDelta, FindingChange, Flips, MetricDelta
from nnprobe.imagenet_c.results import (CleanCounts, CorruptionPoint, CorruptionResult, CorruptionSettings,
                                        PerturbationBaseline, PerturbationPoint)
from nnprobe.imagenet_c import verdicts
from nnprobe.intervals import Interval
from nnprobe.results import Gate


def corruption_result(gates: tuple[Gate, ...] = ()) -> CorruptionResult:
    points = tuple(CorruptionPoint(c1, min(7, c1 + 2), 7, name, family, severity)
                   for name, family, base in (("gaussian_noise", "noise", 4), ("fog", "weather", 2))
                   for severity, c1 in ((1, base + 1), (3, base)))
    result = CorruptionResult(clean=CleanCounts(6, 7, 7), points=points,
                              settings=CorruptionSettings(("gaussian_noise", "fog"), (1, 3), seed=0),
                              model=fixtures.MODEL, data={"path": "val", "layout": "folders"}, run=fixtures.RUN,
                              gates=gates, perturbations=(PerturbationPoint("brightness", 3, 210, 17),
                                                          PerturbationPoint("gaussian_noise", 1, 210, 4)),
                              perturbation_baseline=PerturbationBaseline(
                                  "alexnet.json", "torchvision:alexnet",
                                  (PerturbationPoint("brightness", 6, 210, 30),
                                   PerturbationPoint("gaussian_noise", 5, 210, 9))))
    # each point's first correct_top1 images right: bits that add up to the counts, and their intervals
    hits = np.arange(7)[:, None] < np.array([6, *(p.correct_top1 for p in points)])[None, :]
    return dataclasses.replace(result, bootstrap=verdicts.bootstrap(result, hits, confidence=0.95, resamples=50,
                                                                    seed=0),
                               verdicts=verdicts.ImageVerdicts.encode(np.arange(7), hits))


def comparison() -> Comparison:
    flips = Flips(3, 1, 0.3125, ("val/a.png", "val/b.png"), ("val/c.png",))
    change = FindingChange("loss-not-finite", "run-a", "error", "train_loss is NaN from step 3.")
    return Comparison(
        compared="eval", baseline="base.json", candidate="cand.json", same_data=True, paired=True,
        metrics=(MetricDelta("top1", 0.75, 0.5, Interval(-0.25, -0.5, -0.01, "newcombe-paired (method 10)")),
                 MetricDelta("ece", None, 0.1)),
        classes=(ClassDelta(1, "dog [big]", 3, 4, 1, 4, 0.25),), flips_top1=flips, flips_top5=flips,
        points=(EpsDelta(2 / 255, 5, 7, 3, 7, flips),), fell_earlier=2, fell_later=0,
        fell_earlier_paths=("val/a.png",), new=(change,), gone=(change,),
        changed=(dataclasses.replace(change, baseline_severity="warning", baseline_message="was a warning"),),
        unchanged=(change,),
        gates=(Gate("max-drop-top1", 0.01, 0.25, False, "top-1 dropped 25.00pt, over the allowed 1.00pt"),),
        notes=("No per-sample file for the baseline.",), options={"max_drop_top1": 0.01})


def robust_with_findings():
    finding = RobustFinding("zero-gradients", "warning", "6 of 6 checked samples have an all-zero gradient.",
                            "Look for non-differentiable steps.", {"checked": 6, "zero": 6, "sample_ids": [0, 1]})
    curve = (MinNormPoint(2 / 255, 4, 7), MinNormPoint(0.0, 5, 7), MinNormPoint(0.01, 1, 7), MinNormPoint(0.02, 0, 7))
    min_norm = MinNormDistribution("fmn-linf", "linf", 100, 5, 4, 1, (0.1, 0.5, 0.9), (0.0081, 0.0123, None), 0.0123,
                                   curve, 500)
    result = fixtures.robust_result(fixtures.robust_gates())
    settings = RobustSettings(**{f.name: getattr(result.settings, f.name) for f in dataclasses.fields(result.settings)},
                              binarization_inner_points=999)
    return dataclasses.replace(result, findings=(finding,), min_norm=min_norm, settings=settings)


def eval_with_suite():
    """The filled eval with the whole calibration suite (every leaf distinct, so a swap would show)."""
    from nnprobe.calibration_suite import CalibrationSuite, Temperature

    def boot(value, lo, hi):
        return Interval(value, lo, hi, "bootstrap-percentile (1000 resamples, seed 0)")

    suite = CalibrationSuite(0.95, boot(0.1712, 0.101, 0.301), boot(0.81234, 0.5123, 1.1234),
                             boot(0.4567, 0.3012, 0.6121), boot(0.1333, 0.0712, 0.2712), boot(0.2111, 0.0313, 0.4414),
                             0.1913, 0.4411, 0.2219, 0.0071, Temperature(1.4321, 0.7654, True), 0.1331)
    from nnprobe.parity import Parity

    parity = Parity("ref.onnx", "onnx", 7, 2, 1, 1, 3, 0.75, "cat/a.png", 281, ("cat/a.png", "dog/b.png"),
                    ("cat/a.png",), ("dog/b.png",), ("cat/a.png", "dog/b.png", "dog/c.png"), 0.95)
    from nnprobe.results import VariantTop1

    variant = VariantTop1("objectnet", "ObjectNet", "detected from the folder's name", "argmax over its 113 classes "
                          "(official)", 113, 3, 7, 11, 2)
    return dataclasses.replace(fixtures.eval_with_findings(), calibration_suite=suite, parity=parity, variant=variant)


def variants_table():
    """eval with several --data NAME=DIR: a subset variant with effective robustness, and the val row."""
    from nnprobe.variants.table import Effective, VariantRow, VariantTable

    effective = Effective("val on ImageNet-A's 200 classes", 41, 50, 0.1234, 0.2766,
                          "logit(y) = 1.9900 logit(x) - 7.6325 over 84 standard models (Taori et al. 2020)")
    rows = (VariantRow(name="a", path="data/a", variant="ImageNet-A", how="named by --data imagenet-a=DIR",
                       protocol="argmax over its 200 classes (official)", classes=200, correct_top1=5, correct_top5=6,
                       total=8, correct_top1_all=3, skipped=1, effective=effective, note="a note"),
            VariantRow(name="val", path="data/val", variant="ImageNet val", how="named by --data val=DIR",
                       protocol="argmax over all 1000 classes", classes=1000, correct_top1=40, correct_top5=45,
                       total=50, correct_top1_all=40, skipped=0, note="the reference (x of every fit)"))
    return VariantTable(rows, fixtures.MODEL, fixtures.RUN, 0.95,
                        (Gate("min-top1", 0.9, 0.625, False, "a: top-1 62.50% is below the 90.00% floor"),),
                        ("a: limited to 8 of 20 images (evenly spaced)",))


def one_of_each() -> dict[str, Any]:
    """Kind name -> a result of that kind with failing gates or findings (so every format has cases)."""
    return {"eval": eval_with_suite(), "robust": robust_with_findings(),
            "corruption": corruption_result((Gate("min-corruption-top1", 0.9, 0.5, False, "below"),)),
            "fool": fixtures.fool_result(fixtures.fool_gates()), "diagnose": fixtures.diagnosis(),
            "compare": comparison(), "eval-models": model_runs(),
            "variants": variants_table(), "models": model_catalog()}


def model_catalog():
    from nnprobe.model_runs import CatalogEntry, ModelCatalog

    return ModelCatalog("res*", (
        CatalogEntry("resnet50", "torchvision", "IMAGENET1K_V2", "/c/resnet50-11ad3fa6.pth", 232, 224, "bilinear",
                     (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "Weights.transforms()"),
        CatalogEntry("timm:resnet18.a1_in1k", "timm", "timm/resnet18.a1_in1k", "/h/models--timm--resnet18.a1_in1k",
                     235, 224, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "pretrained_cfg")),
        {"torch hub": "/c", "Hugging Face hub": "/h"})


def model_runs():
    """Two models on the same images: the filled eval, and a second one of another spec without gates."""
    from nnprobe.model_runs import ModelRuns

    first = eval_with_suite()
    second = dataclasses.replace(first, model=dataclasses.replace(first.model, spec="timm:second"), gates=(),
                                 correct_top1=first.correct_top1 - 1)
    return ModelRuns((first, second), ("tiny.py:net", "timm:second"))


# strings whose value is an enumeration the renderers branch on (the data itself never sets them)
ENUMERATED = {"severity", "status", "fail_on", "norm", "compared", "space", "interpolation", "source", "precision",
              "device", "baseline_severity", "kind", "attack", "family", "corruption", "corruptions", "format", "role",
              "id"}
KEPT = {"fail-if-fooled"}  # a gate name the fool renderers branch on


def poisoned(value: Any, text: str, name: str = "") -> Any:
    """`value` with `text` appended to every string it carries (dataclass fields, tuples, dict values),
    except the enumerations in ENUMERATED."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: poisoned(getattr(value, f.name), text, f.name) for f in dataclasses.fields(value)
                   if f.init}
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(poisoned(v, text, name) for v in value)
    if isinstance(value, list):
        return [poisoned(v, text, name) for v in value]
    if isinstance(value, dict):
        return {k: poisoned(v, text, k) for k, v in value.items()}
    if isinstance(value, str) and name not in ENUMERATED and value not in KEPT:
        return value + text
    return value
