"""The slices of a merged run side by side (issue 21 part 5): one row per `--shard K/N` part with its own counts,
the merged whole as the last row, the indices present (merge refuses a gap or an overlap; a result whose
data.slices misses one names it), and a drill-down per slice. Read from data.slices, which `nnprobe merge`
writes (merging.slice_row); a result that was not merged has none and gets no section."""
from __future__ import annotations

from typing import Any

from nnprobe.report.html import ROWS, Html, details, dl, more, para, section, table
from nnprobe.report.markdown import pct
from nnprobe.results import format_eps


def _count(correct: int, total: int) -> str:
    return f"{correct}/{total} ({pct(correct / total)})" if total else f"{correct}/0"


def _present(rows: list[dict]) -> str:
    count = rows[0]["count"]
    missing = sorted(set(range(1, count + 1)) - {r["index"] for r in rows})
    if missing:
        return (f"{len(rows)} of {count} slices; missing: " + ", ".join(f"{k}/{count}" for k in missing)
                + ". These numbers are not the whole run's.")
    return f"slices 1..{count}, each once (merge refuses a missing or repeated slice)"


def _columns(kind: str, result: Any) -> tuple[tuple[str, ...], Any, tuple]:
    """The kind's headers, its cells for one slice row, and the merged whole's cells."""
    if kind == "eval":
        return (("images", "top-1", "top-5"),
                lambda r: (r["images"], _count(r["correct_top1"], r["images"]), _count(r["correct_top5"], r["images"])),
                (result.total, _count(result.correct_top1, result.total), _count(result.correct_top5, result.total)))
    if kind == "robust":
        eps = [format_eps(p.eps) for p in result.points]
        return (("images", "clean correct", *(f"robust top-1 at {e}" for e in eps)),
                lambda r: (r["images"], r["clean_correct"], *(_count(c, r["images"]) for c in r["correct_top1"])),
                (result.points[0].total, result.points[0].clean_correct,
                 *(_count(p.correct_top1, p.total) for p in result.points)))
    corrupted = (sum(p.correct_top1 for p in result.points), sum(p.total for p in result.points))
    return (("images", "clean top-1", "corrupted top-1 (all points)"),
            lambda r: (r["images"], _count(r["correct_top1"], r["images"]),
                       _count(r["corrupted_correct_top1"], r["corrupted_total"])),
            (result.clean.total, _count(result.clean.correct_top1, result.clean.total), _count(*corrupted)))


def slices_section(kind: str, result: Any) -> Html:
    rows = sorted(result.data.get("slices") or [], key=lambda r: r["index"])
    if not rows:
        return Html("")
    headers, cells, whole = _columns(kind, result)
    count = rows[0]["count"]
    body = [(f"merged ({len(rows)})", "the whole run", *whole, f"{result.run.seconds:.2f}")]  # first: never cut
    body += [(f"{r['index']}/{count}", r["part"], *cells(r), f"{r['seconds']:.2f}") for r in rows]
    drill = [details(f"slice {r['index']}/{count}: {r['part']}", dl(_pairs(kind, r, result))) for r in rows[:ROWS]]
    return section("Slices side by side", para(_present(rows), cls="note"),
                   table(("slice", "part", *headers, "seconds"), body, right=tuple(range(2, len(headers) + 3)),
                         total=len(body), noun="rows"),
                   *drill, more(len(drill), len(rows), "slices"))


def _pairs(kind: str, row: dict, result: Any) -> list[tuple[str, Any]]:
    pairs = [("part", row["part"]), ("slice", f"{row['index']}/{row['count']}"), ("images", row["images"])]
    if kind == "robust":
        pairs += [("clean correct", row["clean_correct"])]
        pairs += [(f"eps {format_eps(p.eps)}", f"top-1 {_count(c1, row['images'])}, top-5 {_count(c5, row['images'])}")
                  for p, c1, c5 in zip(result.points, row["correct_top1"], row["correct_top5"])]
    else:
        pairs += [("top-1" if kind == "eval" else "clean top-1", _count(row["correct_top1"], row["images"])),
                  ("top-5" if kind == "eval" else "clean top-5", _count(row["correct_top5"], row["images"]))]
    if kind == "corruption":
        pairs.append(("corrupted top-1, all points", _count(row["corrupted_correct_top1"], row["corrupted_total"])))
    return pairs + [("seconds", f"{row['seconds']:.2f}"), ("processes", row["world_size"])]
