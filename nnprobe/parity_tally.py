"""The per-batch side of `--reference-model`: both models' logits on the same pixels, compared on the
device; only the counts, the first positions of each change and the largest difference leave it."""
from __future__ import annotations

import torch

from nnprobe.device import autocast
from nnprobe.errors import UsageError
from nnprobe.parity import SHOWN, Parity, check_parity_gates


class ParityTally:
    def __init__(self, reference_spec: str, reference_source: str) -> None:
        self.spec, self.source = reference_spec, reference_source
        self.counts = torch.zeros(5, dtype=torch.int64)  # images, top-1 changed, right->wrong, wrong->right, top-5
        self.positions: dict[str, list[int]] = {k: [] for k in ("changed", "r2w", "w2r", "top5")}
        self.max_diff, self.max_at = -1.0, (None, None)

    def add(self, positions: torch.Tensor, labels: torch.Tensor, candidate: torch.Tensor,
            reference: torch.Tensor) -> None:
        """One batch: each model's float logits over all its classes, the same images in the same order."""
        if candidate.shape != reference.shape:
            raise ValueError(f"logit shapes differ: {tuple(candidate.shape)} vs {tuple(reference.shape)}")
        k = min(5, candidate.shape[1])
        top_c, top_r = candidate.topk(k, dim=1).indices, reference.topk(k, dim=1).indices
        changed = top_c[:, 0] != top_r[:, 0]
        right_c, right_r = top_c[:, 0] == labels, top_r[:, 0] == labels
        r2w, w2r = right_r & ~right_c, right_c & ~right_r
        top5 = (top_c.sort(dim=1).values != top_r.sort(dim=1).values).any(dim=1)
        diff = (candidate.float() - reference.float()).abs()
        diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)  # NaN is the worst drift
        flat = int(diff.argmax())
        row, column = divmod(flat, diff.shape[1])
        value = float(diff.view(-1)[flat])
        if value > self.max_diff:
            self.max_diff, self.max_at = value, (int(positions[row]), column)
        masks = {"changed": changed, "r2w": r2w, "w2r": w2r, "top5": top5}
        self.counts += torch.stack([torch.tensor(len(labels))] + [m.sum().cpu() for m in masks.values()])
        for name, mask in masks.items():
            if len(self.positions[name]) < SHOWN:
                self.positions[name] += positions[mask.cpu()].tolist()[:SHOWN - len(self.positions[name])]

    def result(self, path_of, confidence: float) -> Parity:
        """The Parity record; `path_of(position)` names an image."""
        images, changed, r2w, w2r, top5 = (int(v) for v in self.counts)
        paths = {k: tuple(path_of(p) for p in v) for k, v in self.positions.items()}
        position, column = self.max_at
        return Parity(self.spec, self.source, images, changed, r2w, w2r, top5,
                      self.max_diff if images else float("nan"),
                      path_of(position) if position is not None else None, column,
                      paths["changed"], paths["r2w"], paths["w2r"], paths["top5"], confidence)


class SharedReference:
    """One reference held against several candidates (eval with several models and --reference-model): its
    logits on a batch are computed once and handed to each candidate that sees equal pixels (the candidates of
    one decoding pass take their turns on the same batch, one after the other), so N candidates cost N + 1
    forwards per batch instead of 2N. Pass it to `evaluate(reference=...)` in place of the Classifier."""

    def __init__(self, reference) -> None:
        self.reference = reference
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def logits(self, pixels: torch.Tensor, precision: str) -> torch.Tensor:
        last = self._last
        if last is not None and last[0].shape == pixels.shape and last[0].device == pixels.device \
                and torch.equal(last[0], pixels):
            return last[1]
        with autocast(pixels.device, precision):
            theirs = self.reference(pixels).float()
        self._last = (pixels, theirs)
        return theirs


class ReferenceRun:
    """The evaluation hook of `--reference-model`: the reference's logits on each batch's pixels (the same
    tensor the candidate saw), tallied against the candidate's."""

    def __init__(self, reference, precision: str, shared: SharedReference | None = None) -> None:
        self.reference, self.precision, self.shared = reference, precision, shared
        self.tally = ParityTally(reference.info.spec, reference.info.source)
        self.moved = False

    @staticmethod
    def checked(candidate, reference, shard, max_flips, max_logit_diff, precision) -> "ReferenceRun | None":
        """The hook, after refusing what cannot be compared (before any image is decoded); None without one.
        `reference` is a Classifier or a SharedReference of one."""
        check_parity_gates(max_flips, max_logit_diff)
        shared = reference if isinstance(reference, SharedReference) else None
        reference = shared.reference if shared is not None else reference
        if reference is None:
            if max_flips is not None or max_logit_diff is not None:
                raise UsageError("--max-flips and --max-logit-diff judge a model against --reference-model: "
                                 "give the reference too.")
            return None
        if shard is not None:
            raise UsageError("--reference-model compares whole runs: not with --shard.")
        if reference.num_classes != candidate.num_classes:
            raise UsageError(f"--reference-model has {reference.num_classes} classes and the model "
                             f"{candidate.num_classes}: they cannot be compared logit by logit.")
        mine, theirs = candidate.preprocessing, reference.preprocessing
        if (mine.resize_size, mine.crop_size, mine.interpolation, mine.antialias) != \
                (theirs.resize_size, theirs.crop_size, theirs.interpolation, theirs.antialias):
            raise UsageError(f"The model resizes {mine.resize_size} -> {mine.crop_size} {mine.interpolation} and "
                             f"--reference-model {theirs.resize_size} -> {theirs.crop_size} {theirs.interpolation}: "
                             "both must see the same pixels (give --resize/--crop/--interpolation).")
        return ReferenceRun(reference, precision, shared)

    def __call__(self, pixels: torch.Tensor, positions, labels: torch.Tensor, logits: torch.Tensor) -> None:
        if not self.moved:
            self.reference = self.reference.to(pixels.device).eval()
            self.moved = True
        if self.shared is not None:
            theirs = self.shared.logits(pixels, self.precision)
        else:
            with autocast(pixels.device, self.precision):
                theirs = self.reference(pixels).float()
        self.tally.add(positions, labels, logits, theirs)
