"""The one diagnose check that needs the model itself (`--model` + `--data`): run it on labelled images
and measure how its answers spread over classes, instead of inferring it from logged curves.

A dead or collapsed network answers one class for every input (the talk's "learns to predict a constant
value"). Measured: the share of the most-predicted class and the entropy of the predicted-class
distribution, against the labels' own spread. Imports torch (through evaluate) only when called.
"""
from __future__ import annotations

import math

from nnprobe.diagnosis.results import Finding

CHECK_ID = "prediction-spread"
# Constant: one answer for >= 95% of the images while the labels are spread (no majority class that
# large). Concentrated: the most frequent answer is >= 3x as common as the most frequent label and covers
# >= 50% of the images. Both well clear of a working model, which tracks the label distribution.
CONSTANT_SHARE = 0.95
CONCENTRATED_RATIO = 3.0
CONCENTRATED_SHARE = 0.5


def prediction_findings(result, run: str) -> list[Finding]:
    """Findings from an EvalResult: error when the model predicts (almost) one class, warning when its
    answers are far more concentrated than the labels, info with the measurement otherwise."""
    spread = result.predictions
    label_counts = [pc.total for pc in result.per_class if pc.total]
    label_share = max(label_counts) / result.total
    label_entropy = -sum(c / result.total * math.log(c / result.total) for c in label_counts)
    evidence = {"images": result.total, "distinct_predicted": spread.distinct_classes,
                "most_predicted": spread.most_predicted, "most_predicted_name": spread.most_predicted_name,
                "most_predicted_share": round(spread.most_predicted_share, 4),
                "prediction_entropy_nats": round(spread.entropy_nats, 4),
                "label_majority_share": round(label_share, 4), "label_entropy_nats": round(label_entropy, 4),
                "top1": round(result.top1, 4), "data": result.data["path"]}
    name = f"{spread.most_predicted} ({spread.most_predicted_name})"
    if spread.most_predicted_share >= CONSTANT_SHARE and label_share < CONSTANT_SHARE:
        return [Finding(CHECK_ID, "error",
                        f"The model predicts class {name} for {spread.most_predicted_share:.0%} of {result.total} "
                        f"images whose labels span {len(label_counts)} classes: a constant predictor.",
                        "A dead network (NaN or zero weights, dead ReLUs, a frozen or missing head) or labels "
                        "that all say the same; check the weights load and the last layer's gradients.",
                        evidence, run)]
    if (spread.most_predicted_share >= CONCENTRATED_SHARE
            and spread.most_predicted_share >= CONCENTRATED_RATIO * label_share):
        return [Finding(CHECK_ID, "warning",
                        f"Class {name} gets {spread.most_predicted_share:.0%} of the model's answers but only "
                        f"{label_share:.0%} of the labels are its most common class.",
                        "Class imbalance in training, a too-strong bias term, or preprocessing that differs "
                        "from training (mean/std, resize) pushing inputs to one class.", evidence, run)]
    return [Finding(CHECK_ID, "info",
                    f"Predictions spread over {spread.distinct_classes} classes (most frequent {name}, "
                    f"{spread.most_predicted_share:.0%}); top-1 {result.top1:.1%} on {result.total} images.",
                    "", evidence, run)]
