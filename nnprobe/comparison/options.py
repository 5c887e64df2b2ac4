"""The user's gates for one comparison, parsed once (threshold syntax in `thresholds`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnprobe.comparison.thresholds import parse_alpha, parse_drop
from nnprobe.intervals import CONFIDENCE, check_confidence

SHOWN_PATHS = 20  # flipped images listed by path, per direction
SHOWN_CLASSES = 10  # classes that lost most


@dataclass(frozen=True)
class Options:
    max_drop_top1: float | None = None
    max_drop_top5: float | None = None
    max_class_drop: float | None = None
    alpha: float | None = None
    allow_different_data: bool = False
    confidence: float = CONFIDENCE  # of the interval on each delta

    @staticmethod
    def parse(*, max_drop_top1: Any = None, max_drop_top5: Any = None, max_class_drop: Any = None,
              alpha: Any = None, allow_different_data: bool = False, confidence: Any = CONFIDENCE) -> "Options":
        return Options(parse_drop(max_drop_top1, "max_drop_top1"), parse_drop(max_drop_top5, "max_drop_top5"),
                       parse_drop(max_class_drop, "max_class_drop"), parse_alpha(alpha), bool(allow_different_data),
                       check_confidence(confidence))

    def as_dict(self) -> dict[str, Any]:
        return {"max_drop_top1": self.max_drop_top1, "max_drop_top5": self.max_drop_top5,
                "max_class_drop": self.max_class_drop, "alpha": self.alpha,
                "allow_different_data": self.allow_different_data, "confidence": self.confidence}
