"""The one sharded data path: disjoint padding-free shards, counts equal to one process under torchrun,
and a process group destroyed only when nnprobe created it (also when the call raises)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "attacks"))
import tinymodels  # noqa: E402

from nnprobe.data.shards import shard_positions  # noqa: E402

WORKER = Path(__file__).resolve().parent / "shard_worker.py"
ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 5])
def test_shards_are_disjoint_cover_everything_without_padding(world_size):
    for total in range(21):
        shards = [shard_positions(total, rank, world_size) for rank in range(world_size)]
        flat = [p for shard in shards for p in shard]
        assert sorted(flat) == list(range(total)), (total, shards)  # each position exactly once
        assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced, no repeats to even them out
        assert all(shard == sorted(shard) for shard in shards)  # data-set order within a rank


def test_positions_for_a_known_case():
    assert [shard_positions(7, r, 3) for r in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]
    assert shard_positions(0, 0, 1) == [] and shard_positions(2, 4, 5) == []


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """9 decodable images and one broken file; and a set of only broken files (one per rank of two)."""
    root = tmp_path_factory.mktemp("shards")
    tinymodels.save_class_folders(root / "data", 9, seed=5)
    (root / "data" / "class1" / "broken.png").write_bytes(b"not a png")
    for k in (0, 1):
        (root / "broken" / f"class{k}").mkdir(parents=True)
        (root / "broken" / f"class{k}" / f"bad{k}.png").write_bytes(b"not a png")
    return root


def _expected(data) -> dict:
    """One process, in this process, with no process group: the reference for every rank and mode."""
    sys.path.insert(0, str(WORKER.parent))
    import shard_worker

    from nnprobe.data.layouts import find_images

    images = find_images(str(data / "data"), class_names=shard_worker.CLASSES, wnids=None, num_classes=4)
    return {"eval": shard_worker.eval_counts(tinymodels.tiny_classifier(), images),
            "robust": shard_worker.robust_counts(tinymodels.tiny_classifier(), images)}


def _run(data, mode: str, ranks: int, out: Path, *extra: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] \
        if ranks > 1 else [sys.executable]
    proc = subprocess.run([*head, str(WORKER), mode, str(data / "data"), str(data / "broken"), str(out), *extra],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [f"rank{r}.json" for r in range(ranks)]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]


def _check(records, expected, owned_by_caller: bool) -> None:
    for record in records:
        for name in ("eval", "robust", "eval-again", "robust-again"):
            assert record[name] == [expected[name.removesuffix("-again")], owned_by_caller], (name, record)
        for name in ("eval-nan", "robust-nan"):
            out, initialised = record[name]
            assert out.startswith("NnprobeError: The model gave NaN or infinite logits for 9 of 9 images"), out
            assert initialised == owned_by_caller, name
        out, initialised = record["eval-strict"]
        assert out.startswith("DataError: ") and out.endswith("(--strict).") and "bad" in out, out
        assert initialised == owned_by_caller


def test_torchrun_group_nnprobe_creates_is_destroyed_and_counts_equal_one_process(data, tmp_path):
    expected = _expected(data)
    assert expected["eval"][2] == 9 and len(expected["eval"][3]) == 1  # the broken file is skipped, reported
    assert expected["robust"][1][4] > 0  # the attack fools something: counts that can differ
    _check(_run(data, "nnprobe", 2, tmp_path), expected, owned_by_caller=False)


def test_torchrun_group_the_caller_made_is_left_alone(data, tmp_path):
    _check(_run(data, "caller", 2, tmp_path), _expected(data), owned_by_caller=True)


def test_one_process_group_the_caller_made_is_left_alone(data, tmp_path):
    (tmp_path / "out").mkdir()
    [record] = _run(data, "caller-single", 1, tmp_path / "out", str(tmp_path / "store"))
    _check([record], _expected(data), owned_by_caller=True)
    out, initialised = record["eval-mismatch"]
    assert out.startswith("UsageError: The process group already initialised is rank 0 of 1, but torchrun's "
                          "RANK/WORLD_SIZE say 0 of 2"), out
    assert initialised
