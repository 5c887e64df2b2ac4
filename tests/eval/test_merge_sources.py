"""`nnprobe merge` over a quoted glob and over a bucket (a real S3 protocol server on 127.0.0.1): the same
merged result as the files named one by one; a missing slice is named; nothing matched is one sentence."""
from __future__ import annotations

import json
import shutil

import pytest
from helpers import PLAIN, factory_spec, make_wnid_folders
from s3_server import moto_s3

from nnprobe import api
from nnprobe.errors import DataError, InputError
from nnprobe.options.parts import Part, part_name

MODEL = factory_spec("color_net_1000")
COUNT = 3


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Three slices' result JSONs, named as `-o 'parts/part-{shard}.json'` names them; and one process's."""
    root = tmp_path_factory.mktemp("merge-sources")
    data = make_wnid_folders(root / "data", {5: 3, 350: 2, 998: 2}, wrong={5: 1})
    folder = root / "parts"
    folder.mkdir()
    for k in range(1, COUNT + 1):
        result = api.evaluate(MODEL, data, workers=0, shard=f"{k}/{COUNT}", **PLAIN)
        (root / part_name("parts/part-{shard}.json", Part(k, COUNT))).write_text(json.dumps(result.to_dict()))
    whole = api.evaluate(MODEL, data, workers=0, **PLAIN)
    return folder, whole


def counts(result) -> tuple:
    body = result.to_dict()
    return body["correct_top1"], body["correct_top5"], body["total"], body["per_class"], body["data"]["merged_from"]


def test_a_quoted_glob_merges_like_the_files_named_one_by_one(parts):
    folder, whole = parts
    named = sorted(str(p) for p in folder.glob("*.json"))
    assert [p.rsplit("/", 1)[1] for p in named] == ["part-1-of-3.json", "part-2-of-3.json", "part-3-of-3.json"]
    by_glob = api.merge([str(folder / "part-*.json")])
    assert counts(by_glob) == counts(api.merge(named))
    assert counts(by_glob)[:3] == (whole.correct_top1, whole.correct_top5, whole.total) == (7, 7, 8)
    with pytest.raises(DataError, match="are both slice 1/3: an overlap"):  # a file given twice is refused
        api.merge([str(folder / "part-*.json"), named[0]])


def test_a_glob_that_matches_nothing_is_one_sentence(parts, tmp_path, invoke):
    with pytest.raises(InputError, match="No file matches .*nothing-\\*.json"):
        api.merge([str(tmp_path / "nothing-*.json")])
    run = invoke("merge", str(tmp_path / "nothing-*.json"))
    assert run.returncode == 2 and "No file matches" in run.stderr and "Traceback" not in run.stderr


def test_merge_command_takes_a_quoted_glob_and_names_a_missing_slice(parts, tmp_path, invoke):
    folder, whole = parts
    run = invoke("merge", str(folder / "part-*.json"), "--format", "json", "--min-top1", "0.8")
    body = json.loads(run.stdout)
    assert run.returncode == 0 and (body["correct_top1"], body["total"]) == (7, 8)
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    (partial / "part-2-of-3.json").unlink()
    run = invoke("merge", str(partial / "part-*.json"))
    assert run.returncode == 2 and "Slice 2/3 missing: 2 of 3 given." in run.stderr


def test_merge_from_a_bucket_equals_the_local_merge(parts, invoke):
    folder, _ = parts
    local = api.merge([str(folder / "part-*.json")])
    with moto_s3() as client:
        for path in sorted(folder.glob("*.json")):
            client.upload_file(str(path), "bucket", f"run/{path.name}")
        client.put_object(Bucket="bucket", Key="run/notes.txt", Body=b"not a part")  # the glob leaves it out
        assert counts(api.merge(["s3://bucket/run/part-*.json"])) == counts(local)
        assert counts(api.merge(["s3://bucket/run/"])) == counts(local)  # a folder: its .json objects
        run = invoke("merge", "s3://bucket/run/part-*.json", "--format", "json")
        assert run.returncode == 0 and json.loads(run.stdout)["correct_top1"] == local.correct_top1
        # a retried slice overwrites its own name: still three parts
        client.upload_file(str(folder / "part-2-of-3.json"), "bucket", "run/part-2-of-3.json")
        assert counts(api.merge(["s3://bucket/run/part-*.json"])) == counts(local)
        client.delete_object(Bucket="bucket", Key="run/part-3-of-3.json")
        with pytest.raises(DataError, match="Slice 3/3 missing: 2 of 3 given"):
            api.merge(["s3://bucket/run/part-*.json"])
        for url, message in [("s3://bucket/other/part-*.json", "No object matches s3://bucket/other/part-"),
                             ("s3://no-such-bucket/run/part-1-of-3.json", "does not exist")]:
            run = invoke("merge", url)
            assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr, run.stderr
