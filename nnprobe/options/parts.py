"""`--shard K/N`: the K-th of N disjoint, deterministic slices of a data set, so that any scheduler (a Slurm
array, a Kubernetes indexed job, a CI matrix) can run one nnprobe per slice and `nnprobe merge` can add the
partial results up exactly. torchrun ranks, inside one slice, split it further.

Slices interleave (image i belongs to slice i mod N), so every slice sees every class folder and takes
about the same time. This module imports no torch: the spelling is checked before any work.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from nnprobe.errors import UsageError

MAX_PARTS = 1_000_000


@dataclass(frozen=True)
class Part:
    index: int  # 1-based, as array jobs number their tasks
    count: int

    def positions(self, total: int) -> range:
        """The data-set positions of this slice."""
        return range(self.index - 1, total, self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_part(text: "str | Part | None") -> Part | None:
    """`3/8` -> Part(3, 8); K counts from 1 (SLURM_ARRAY_TASK_ID=1..N, or JOB_COMPLETION_INDEX + 1).

    `auto` (or `auto/N` where the scheduler does not expose the count) reads the array index that Slurm,
    a Kubernetes indexed Job, AWS Batch or Google Cloud Batch hands the task (nnprobe.schedulers);
    outside any scheduler `auto` is 1/1."""
    if text is None or isinstance(text, Part):
        return text
    auto = re.fullmatch(r"\s*auto\s*(?:/\s*(\d{1,7})\s*)?", str(text), flags=re.IGNORECASE)
    if auto:
        from nnprobe.schedulers import auto_part

        count = int(auto.group(1)) if auto.group(1) else None
        if count is not None and not 1 <= count <= MAX_PARTS:
            raise UsageError(f"--shard {text}: N must be between 1 and {MAX_PARTS}.")
        return Part(*auto_part(count))
    match = re.fullmatch(r"\s*(\d{1,7})\s*/\s*(\d{1,7})\s*", str(text))
    if not match:
        raise UsageError(f"--shard {str(text)!r} is not K/N: write 3/8 for the third of eight slices, or auto to "
                         "take the slice from a scheduler's array index.")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_PARTS or not 1 <= index <= count:
        raise UsageError(f"--shard {text}: K must be between 1 and N (N between 1 and {MAX_PARTS}); slices count "
                         "from 1.")
    return Part(index, count)


def part_name(template: str, part: Part | None) -> str:
    """`-o 'parts/part-{shard}.json'` -> `parts/part-03-of-10.json`: one name per slice, the same on every
    retry of that slice (so a retried array task replaces its part, never adds a second one); the index is
    zero-padded to N's width so the names sort in slice order. Without --shard, `{shard}` is `1-of-1`."""
    if "{shard}" not in template:
        return template
    part = part or Part(1, 1)
    width = len(str(part.count))
    return template.replace("{shard}", f"{part.index:0{width}d}-of-{part.count}")


def slice_info(part: Part | None, total: int) -> dict:
    """The `data.shard` entry of a `--shard K/N` result (which slice, how many images it holds); {} without."""
    if part is None:
        return {}
    return {"shard": {"index": part.index, "count": part.count, "images": len(part.positions(total))}}
