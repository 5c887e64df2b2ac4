"""torchrun with 2 gloo processes on the CPU gives exactly the one-process result on odd sizes."""
from __future__ import annotations

import json
import subprocess
import sys

from helpers import PLAIN_FLAGS, factory_spec, make_wnid_folders
from data.test_decode import make_broken_files

from nnprobe.models.imagenet import imagenet_wnids
from nnprobe.per_sample import file_sha256, read


def test_two_ranks_equal_one_process_on_odd_sizes(tmp_path):
    # 7 decodable images (3 wrong) + 2 broken files: 9 files over 2 ranks, no padding, no duplicates.
    make_wnid_folders(tmp_path / "data", {5: 3, 350: 1}, wrong={5: 2, 350: 1})
    make_broken_files(tmp_path / "data" / imagenet_wnids()[350] / "x")
    (tmp_path / "data" / imagenet_wnids()[350] / "x" / "bomb.png").unlink()
    args = ["eval", str(tmp_path / "data"), "--model", factory_spec("color_net_1000"), *PLAIN_FLAGS,
            "--format", "json", "--workers", "0", "--batch-size", "2", "--device", "cpu"]
    single = subprocess.run([sys.executable, "-m", "nnprobe", *args, "-o", str(tmp_path / "one.json"),
                             "--save-predictions", str(tmp_path / "one.preds")],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            "-m", "nnprobe", *args, "-o", str(tmp_path / "two.json"),
                            "--save-predictions", str(tmp_path / "two.preds.gz")],
                           capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert (one["correct_top1"], one["correct_top5"], one["total"]) == (4, 4, 7)
    assert two["run"]["world_size"] == 2 and one["run"]["world_size"] == 1
    for key in ("correct_top1", "correct_top5", "total", "converted", "per_class", "skipped"):
        assert two[key] == one[key], key
    assert abs(two["mean_loss"] - one["mean_loss"]) < 1e-6 * one["mean_loss"]  # float32 sums per batch
    assert len(one["skipped"]) == 3
    # rank 0 writes every rank's rows, in data order: the same rows as one process
    header1, rows1 = read(str(tmp_path / "one.preds"))
    header2, rows2 = read(str(tmp_path / "two.preds.gz"))
    assert header1 == header2 and header1["rows"] == 7 == len(rows1)
    assert header1["data_fingerprint"] == one["data"]["fingerprint"] == two["data"]["fingerprint"]
    exact = ("i", "path", "label", "top5", "correct")
    assert [{k: r[k] for k in exact} for r in rows2] == [{k: r[k] for k in exact} for r in rows1]
    assert [r["i"] for r in rows1] == sorted(r["i"] for r in rows1)
    assert sum(r["correct"] for r in rows1) == one["correct_top1"]
    for a, b in zip(rows1, rows2):
        assert abs(a["loss"] - b["loss"]) < 1e-4 and abs(a["confidence"] - b["confidence"]) < 1e-4
    assert one["per_sample"]["rows"] == 7 and one["per_sample"]["sha256"] == file_sha256(str(tmp_path / "one.preds"))
    assert two["per_sample"]["sha256"] == file_sha256(str(tmp_path / "two.preds.gz"))
