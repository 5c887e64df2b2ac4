"""Hand-built results for the compare tests: per-sample files written line by line with json (not with
nnprobe.per_sample), result JSON whose aggregates are counted here by plain loops."""
from __future__ import annotations

import gzip
import hashlib
import json
import random
from pathlib import Path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(pairs) -> str:
    text = "".join(f"{p}\t{label}\n" for p, label in sorted(pairs))
    return hashlib.sha256(text.encode()).hexdigest()


def write_lines(path: Path, header: dict, rows: list[dict]) -> None:
    text = "".join(json.dumps(line) + "\n" for line in [header, *rows]).encode()
    path.write_bytes(gzip.compress(text, mtime=0) if path.name.endswith(".gz") else text)


def eval_rows(labels: list[int], predictions: list[list[int]], losses: list[float]) -> list[dict]:
    return [{"i": i, "path": f"c{label}/img{i:04d}.png", "label": label, "top5": top, "loss": loss,
             "confidence": 0.5, "correct": top[0] == label}
            for i, (label, top, loss) in enumerate(zip(labels, predictions, losses))]


def eval_result(tmp: Path, name: str, rows: list[dict], num_classes: int, *, preds: bool = True,
                with_fingerprint: bool = True, calibration: dict | None = None, gz: bool = False) -> Path:
    """`name`.json (and `name`.preds) in `tmp`; aggregates counted from `rows` by plain loops."""
    fp = fingerprint((r["path"], r["label"]) for r in rows)
    per_sample = None
    if preds:
        file = tmp / f"{name}.preds{'.gz' if gz else ''}"
        write_lines(file, {"format": "nnprobe-per-sample", "version": 1, "kind": "eval", "data_fingerprint": fp,
                           "rows": len(rows), "num_classes": num_classes}, rows)
        per_sample = {"path": file.name, "sha256": sha256_of(file), "rows": len(rows)}
    per_class = []
    for k in range(num_classes):
        mine = [r for r in rows if r["label"] == k]
        right = sum(1 for r in mine if r["top5"][0] == k)
        per_class.append({"index": k, "name": f"class{k}", "correct_top1": right, "total": len(mine),
                          "predicted": sum(1 for r in rows if r["top5"][0] == k),
                          "top1": right / len(mine) if mine else None})
    top1 = sum(r["top5"][0] == r["label"] for r in rows)
    top5 = sum(r["label"] in r["top5"] for r in rows)
    body = {"schema_version": 1, "kind": "eval", "top1": top1 / len(rows), "top5": top5 / len(rows),
            "correct_top1": top1, "correct_top5": top5, "total": len(rows),
            "mean_loss": sum(r["loss"] for r in rows) / len(rows), "per_class": per_class,
            "data": {"path": "val", "layout": "folders"}, "per_sample": per_sample, "gates": [], "passed": True}
    if with_fingerprint:
        body["data"]["fingerprint"] = fp
    if calibration is not None:
        body["calibration"] = calibration
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(body))
    return path


def random_eval_pair(seed: int, n: int, num_classes: int, worse: float):
    """Baseline and candidate answers on the same n images: the candidate moves `worse` of the baseline's
    right answers to a wrong class and `worse / 2` of its wrong ones to right."""
    rng = random.Random(seed)
    labels = [rng.randrange(num_classes) for _ in range(n)]

    def top5(first: int) -> list[int]:
        rest = [k for k in range(num_classes) if k != first]
        rng.shuffle(rest)
        return [first] + rest[:4]

    base = [top5(lab if rng.random() < 0.7 else (lab + 1) % num_classes) for lab in labels]
    cand = []
    for lab, top in zip(labels, base):
        right = top[0] == lab
        if right and rng.random() < worse:
            cand.append(top5((lab + 2) % num_classes))
        elif not right and rng.random() < worse / 2:
            cand.append(top5(lab))
        else:
            cand.append(list(top))
    losses_b = [round(rng.random(), 6) for _ in range(n)]
    losses_c = [round(rng.random() + 0.1, 6) for _ in range(n)]
    return eval_rows(labels, base, losses_b), eval_rows(labels, cand, losses_c)


def robust_result(tmp: Path, name: str, rows: list[dict], eps: list[float], *, preds: bool = True) -> Path:
    """A robust result whose per-eps counts are counted from `rows`: right at eps when clean right and not
    fooled at or below eps (top-5 taken equal to top-1 + 1 so the top-5 gate has numbers)."""
    fp = fingerprint((r["path"], r["label"]) for r in rows)
    per_sample = None
    if preds:
        file = tmp / f"{name}.preds"
        write_lines(file, {"format": "nnprobe-per-sample", "version": 1, "kind": "robust", "data_fingerprint": fp,
                           "rows": len(rows), "eps": eps}, rows)
        per_sample = {"path": file.name, "sha256": sha256_of(file), "rows": len(rows)}
    points = []
    for e in eps:
        right = sum(1 for r in rows if r["clean_correct"] and (r["fell_at"] is None or r["fell_at"] > e))
        points.append({"eps": e, "correct_top1": right, "correct_top5": min(len(rows), right + 1),
                       "total": len(rows), "clean_correct": sum(r["clean_correct"] for r in rows)})
    body = {"schema_version": 1, "kind": "robust", "passed": True, "points": points,
            "data": {"path": "val", "fingerprint": fp}, "per_sample": per_sample, "gates": []}
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(body))
    return path


def diagnose_dict(findings: list[tuple[str, str, str, str]], runs: list[str]) -> dict:
    """A diagnose result with (id, severity, message, run) findings."""
    return {"schema_version": 1, "kind": "diagnose", "path": "runs", "fail_on": "error",
            "findings": [{"id": i, "severity": s, "message": m, "hint": "", "evidence": {}, "run": r}
                         for i, s, m, r in findings],
            "runs": [{"path": r, "curves": {}} for r in runs]}
