"""Input conventions and the model's mode, measured on an evenly spaced subset of the images decoded once:
normalisation off (or on), 0-255 pixels, BGR, the argmax over the classes present, and a model that still
behaves as in training after .eval()."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from nnprobe.setup_checks.labels import relabelled
from nnprobe.setup_checks.verdicts import SetupFinding, severity, verdict

OUTPUT_TOLERANCE = 1e-3  # relative logit difference above which two forwards of the same images differ
INV_255 = repr(1 / 255)  # the --std that multiplies [0, 1] pixels by 255 (float64-exact string)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class _Variant:
    id: str
    claim: str  # what the finding says the model expects
    how: str  # how the alternative input was made
    forward: Callable[[torch.Tensor], torch.Tensor]
    fix: str
    restrict: bool = False  # argmax over the classes present only
    evidence: dict = field(default_factory=dict)


class Probe:
    """An evenly spaced subset of the images, decoded once (uint8), and forwards of it under alternatives."""

    def __init__(self, classifier, pixels: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 dev: torch.device, restrict: bool, present: list[int]) -> None:
        self.classifier, self.pixels, self.labels = classifier, pixels, labels.numpy()
        self.batch_size, self.dev, self.restrict = batch_size, dev, restrict
        classes = sorted(set(present) | set(self.labels.tolist()))
        self.present = torch.tensor(classes, dtype=torch.int64, device=dev)
        self.saved: dict[str, torch.Tensor] = {}
        self.cache: dict[int, tuple] = {}  # id(forward) -> (forward, answers, answers over the present classes)

    @staticmethod
    def decoded(classifier, images, subset: int, batch_size: int, dev: torch.device, restrict: bool,
                present: list[int]) -> "Probe | None":
        from nnprobe.data.loader import ImageSamples, make_loader

        n = len(images.samples)
        k = min(subset, n)
        positions = sorted({(i * n) // k for i in range(k)})
        loader = make_loader(ImageSamples(images.samples, classifier.preprocessing, positions,
                                          border=images.border), batch_size=batch_size, workers=0, pin_memory=False)
        batches = [batch for batch in loader if batch.labels.numel()]
        if not batches:
            return None
        return Probe(classifier, torch.cat([b.pixels for b in batches]), torch.cat([b.labels for b in batches]),
                      batch_size, dev, restrict, present)

    def answers(self, forward, restrict: bool) -> np.ndarray:
        """Top-1 class of each subset image under `forward` (argmax over the present classes if `restrict`);
        one pass per forward gives both."""
        key = id(forward)
        if key not in self.cache:
            full, present = [], []
            try:
                with torch.inference_mode():
                    for start in range(0, len(self.pixels), self.batch_size):
                        x = self.pixels[start:start + self.batch_size].to(self.dev).float().div_(255)
                        logits = forward(x).float()
                        full.append(logits.argmax(1))
                        present.append(self.present[logits[:, self.present].argmax(1)])
            finally:
                self._restore()
            self.cache[key] = (forward, torch.cat(full).cpu().numpy(), torch.cat(present).cpu().numpy())
        return self.cache[key][2 if restrict else 1]

    def _restore(self) -> None:
        """Put back the buffers as found: a model in training mode moves its BatchNorm statistics on every
        forward, and one measurement must not change the next (nor the user's model)."""
        with torch.no_grad():
            for name, b in self.classifier.named_buffers():
                if name in self.saved:
                    b.copy_(self.saved[name])

    def findings(self, predicted: np.ndarray, label: SetupFinding | None,
                 table: Mapping[int, int] | None) -> list[SetupFinding]:
        """The label finding if it survives the input conventions, the input convention that explains the
        answers best (one: they are rival explanations of one symptom), and the training-mode check."""
        clf = self.classifier.to(self.dev).eval()
        self.saved = {name: b.detach().clone() for name, b in clf.named_buffers()}
        try:
            as_run = self.answers(clf, self.restrict)
            rivals = [(v, self.answers(v.forward, v.restrict)) for v in self._variants(predicted)]
            found = []
            truth = self.labels
            if label is not None:
                remapped = relabelled(self.labels, table)
                best = self._best(rivals, as_run, self.labels)
                if best is None or np.mean(as_run == remapped) >= best.evidence["top1_after"]:
                    found.append(label)
                    truth = remapped  # judge the input conventions on the corrected labels
                else:
                    answers = dict((v.id, a) for v, a in rivals)[best.id]
                    if verdict(answers == self.labels, answers == remapped)[0]:
                        found.append(label)
            found += [f for f in (self._best(rivals, as_run, truth), self._training_finding(as_run == truth, truth))
                      if f is not None]
        finally:
            self._restore()
        return found

    def _best(self, rivals, as_run: np.ndarray, truth: np.ndarray) -> SetupFinding | None:
        """The input convention whose answers explain the result best, with the others' top-1 as evidence."""
        tried = {v.id: float(np.mean(answers == truth)) for v, answers in rivals}
        verdicts = [(v, *verdict(as_run == truth, answers == truth, chance=1 / len(self.present)))
                    for v, answers in rivals]
        explaining = [(v, numbers) for v, explained, numbers in verdicts if explained]
        if not explaining:
            return None
        variant, numbers = max(explaining, key=lambda item: item[1]["top1_after"])
        return SetupFinding(
            variant.id, severity(numbers),
            f"{variant.claim}: on {numbers['images']} evenly spaced images, top-1 goes from "
            f"{numbers['top1_before']:.1%} as run to {numbers['top1_after']:.1%} {variant.how} "
            f"(p = {numbers['p_value']:.2g}).", variant.fix, {**numbers, **variant.evidence, "tried": tried})

    def _with(self, mean, std):
        from nnprobe.models.classifier import rebuild

        pre = dataclasses.replace(self.classifier.preprocessing, mean=tuple(mean), std=tuple(std))
        return rebuild(self.classifier, preprocessing=pre).to(self.dev).eval()

    def _variants(self, predicted: np.ndarray) -> list[_Variant]:
        """The input conventions to try: normalisation off (or on), 0-255 pixels, BGR, and the argmax over
        the classes present when the model has more outputs than the data has classes."""
        clf = self.classifier
        pre = clf.preprocessing
        found = []
        if tuple(pre.mean) != (0.0, 0.0, 0.0) or tuple(pre.std) != (1.0, 1.0, 1.0):
            found.append(_Variant(
                "double-normalisation", "The model seems to normalise its input itself and nnprobe normalised it "
                "again", "with nnprobe's normalisation off (mean 0, std 1)", self._with((0.0,) * 3, (1.0,) * 3),
                "--mean 0,0,0 --std 1,1,1 (API: mean=(0, 0, 0), std=(1, 1, 1))", self.restrict))
        else:
            found.append(_Variant(
                "normalisation-missing", "The model seems to expect normalised input and got raw [0, 1] pixels",
                "with ImageNet's mean and std", self._with(IMAGENET_MEAN, IMAGENET_STD),
                "--mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 (or the mean/std the model was trained with)",
                self.restrict))
        found.append(_Variant(
            "expects-0-255", "The model seems to expect pixels in 0-255, not in [0, 1]",
            "with pixels scaled to 0-255 (mean 0, std 1/255)", self._with((0.0,) * 3, (float(INV_255),) * 3),
            f"--mean 0,0,0 --std {INV_255},{INV_255},{INV_255} (std 1/255 multiplies the [0, 1] pixels by 255)",
            self.restrict))
        found.append(_Variant(
            "expects-bgr", "The model seems to expect BGR channel order, not RGB",
            "with the normalised channels reversed (BGR)", lambda x: clf.net(((x - clf.mean) / clf.std).flip(1)),
            "nnprobe has no option to reverse the channels (a --bgr option would be needed): pass the network "
            "wrapped so that its forward reverses them first, net(x.flip(1))", self.restrict))
        k, present = clf.num_classes, self.present.cpu().numpy()
        if not self.restrict and k > len(present):
            outside = float(np.mean(~np.isin(predicted, present))) if predicted.size else 0.0
            found.append(_Variant(
                "logits-classes-mismatch", f"The model has {k} outputs but the data has {len(present)} classes, "
                f"and {outside:.1%} of its answers are classes absent from the data",
                f"with the argmax restricted to the {len(present)} classes present", clf,
                "If the data is a subset of the model's classes, pass --restrict-to-present; if the model should "
                f"have {len(present)} outputs, load it with its real head (--num-classes {len(present)}, the right "
                "weights).", True, {"num_classes": k, "classes_present": len(present),
                                    "answers_outside_present": outside}))
        return found

    def _training_finding(self, as_run: np.ndarray, truth: np.ndarray) -> SetupFinding | None:
        """A model that still behaves as in training after .eval(): two forwards of the same images differ
        (dropout), or an image's logits depend on the batch around it (BatchNorm on batch statistics)."""
        clf = self.classifier
        repeat, batch = self._instability(clf)
        if max(repeat, batch) <= OUTPUT_TOLERANCE:
            return None
        still = [name or type(clf).__name__ for name, m in clf.named_modules() if m.training]
        flags = {m: m.training for m in clf.modules()}
        try:
            for m in flags:
                m.training = False  # past any overridden train()/eval()
            stable = max(self._instability(clf)) <= OUTPUT_TOLERANCE
            cleared = self.answers(lambda x: clf(x), self.restrict) == truth if stable else None  # not cached
        finally:
            for m, flag in flags.items():
                m.training = flag
        evidence = {"images": int(as_run.size), "top1_before": float(as_run.mean()), "repeat_difference": repeat,
                    "batch_difference": batch, "modules_in_training_mode": still[:20]}
        how = ("two forwards of the same images differ" if repeat > OUTPUT_TOLERANCE
               else "an image's logits change with the other images in its batch")
        message = f"The model behaves as in training even after .eval(): {how}"
        if cleared is not None:
            _, numbers = verdict(as_run, cleared)
            evidence.update(numbers)
            message += (f"; with every module's training flag cleared, top-1 on {numbers['images']} images goes "
                        f"from {numbers['top1_before']:.1%} to {numbers['top1_after']:.1%}")
        else:
            message += "; clearing every module's training flag does not stop it (a graph captured in train mode)"
        return SetupFinding(
            "training-mode", "error", message + ".",
            "Put the model in eval mode before exporting or scripting it (model.eval(), then torch.export / "
            "torch.jit.script), and remove code that forces training (an overridden train()/eval(), "
            "F.dropout(training=True), BatchNorm with track_running_stats=False).", evidence)

    def _instability(self, clf) -> tuple[float, float]:
        """(relative max difference between two forwards of one batch, between the first image alone and
        in its batch)."""
        x = self.pixels[:max(2, min(len(self.pixels), self.batch_size, 16))].to(self.dev).float().div_(255)
        try:
            with torch.inference_mode():
                first, second, alone = clf(x).float(), clf(x).float(), clf(x[:1]).float()
        finally:
            self._restore()
        scale = max(1.0, float(first.nan_to_num(0.0, 0.0, 0.0).abs().max()))

        def gap(a, b) -> float:  # non-finite logits are eval's error to report, not instability
            return float((a - b).nan_to_num(0.0, 0.0, 0.0).abs().max()) / scale

        return gap(first, second), gap(first[:1], alone) if len(x) > 1 else 0.0
