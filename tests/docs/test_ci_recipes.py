"""docs/ci.md's scheduler recipes run as their schedulers would run them (issue 21 parts 1 and 5): each recipe is
read from the page (the Slurm array script, the Kubernetes indexed Job manifest, the AWS Batch submission, the
Google Batch job config, the GitHub Actions matrix), its tasks run with the variables the scheduler sets
(SLURM_ARRAY_TASK_ID = 0..N-1 with the array's count and bounds, JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX,
BATCH_TASK_INDEX/BATCH_TASK_COUNT, the matrix expanded), and the recipe's own merge command ends it; the merged
result must equal one plain `nnprobe eval` in every count and the merge must exit as that run's gate does.

What the test changes on the page, and only that: the data folder and the model (a 20-image colour set (17 right) and the
tiny colour model, for the page's ImageNet paths and resnet50), and where mounted volumes and buckets live (a
temporary folder; the AWS bucket is a local S3 server, moto). Each `nnprobe` the recipes start runs in this
process through the real entry point (tests/docs/recipe_runner.py), so the suite stays fast."""
from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import PLAIN_FLAGS, TESTS, factory_spec, make_wnid_folders
from recipe_runner import Runner, nnprobe_in_process

PAGE = TESTS.parent / "docs" / "ci.md"
MODEL = factory_spec("color_net_1000")
TINY = f"--model {MODEL} {' '.join(PLAIN_FLAGS)}"  # the tiny model with its own preprocessing, for resnet50
COUNTS = ("correct_top1", "correct_top5", "total", "per_class", "top1", "top5", "predictions", "skipped", "model")


def section(title: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(f"### {title}\n")
    end = text.find("\n## ", start)
    following = text.find("\n### ", start + 4)
    end = min(x for x in (end, following, len(text)) if x != -1)
    return text[start:end]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_wnid_folders(tmp_path_factory.mktemp("recipes") / "val", {5: 6, 350: 5, 998: 6},
                             wrong={5: 2, 998: 1})


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    """The one plain run every merge must equal, and its exit code under the recipes' gate (--min-top1 0.80)."""
    out = tmp_path_factory.mktemp("single") / "single.json"
    code = nnprobe_in_process(["eval", str(data), *TINY.split(), "--min-top1", "0.80", "--format", "json",
                               "-o", str(out)])
    body = json.loads(out.read_text())
    assert (body["total"], body["correct_top1"], code) == (20, 17, 0)
    return body, code


def runner(tmp_path: Path, **extra) -> Runner:
    return Runner(tmp_path / "shims", {"nnprobe": nnprobe_in_process, **extra})


def assert_merged_equals_single(parts: list[Path], count: int, single) -> None:
    from nnprobe import api

    body, _ = single
    assert len(parts) == count, [p.name for p in parts]
    names = sorted(p.name for p in parts)
    assert names == [f"part-{k:0{len(str(count))}d}-of-{count}.json" for k in range(1, count + 1)]
    merged = api.merge([str(p) for p in parts]).to_dict()
    for key in COUNTS:
        assert merged[key] == body[key], key
    assert merged["data"]["fingerprint"] == body["data"]["fingerprint"] and merged["data"]["merged_from"] == count


def test_slurm_array_script(tmp_path, data, single):
    """eval.sbatch run by bash once per array index (sbatch --array=0-15), then the --wrap'ed merge."""
    text = section("Slurm array")
    script, submit = blocks(text, "bash")
    assert script.startswith("#!/bin/bash") and "#SBATCH" in script
    low, high = map(int, re.search(r"--array=(\d+)-(\d+) eval\.sbatch", submit).groups())
    merge = re.search(r'--wrap "([^"]*)"', submit).group(1)
    script = script.replace("/data/imagenet/val", str(data)).replace("--model resnet50", TINY)
    work = tmp_path / "submit"  # Slurm runs each task in the submit folder, on a shared file system
    work.mkdir()
    run = runner(tmp_path)
    count = high - low + 1
    for index in range(low, high + 1):
        env = {"SLURM_ARRAY_JOB_ID": "4242", "SLURM_JOB_ID": str(4243 + index), "SLURM_ARRAY_TASK_ID": str(index),
               "SLURM_ARRAY_TASK_COUNT": str(count), "SLURM_ARRAY_TASK_MIN": str(low),
               "SLURM_ARRAY_TASK_MAX": str(high), "SLURM_ARRAY_TASK_STEP": "1"}
        assert run.bash(script, work, env) == 0
    assert run.bash(merge, work) == single[1]
    assert_merged_equals_single(sorted((work / "parts").glob("part-*.json")), count, single)
    assert len(list((work / "parts").glob("*.preds"))) == count and (work / "all.preds").is_file()
    assert [argv[1] for argv, _, _ in run.served] == ["eval"] * count + ["merge"]


def test_kubernetes_indexed_job(tmp_path, data, single):
    """The manifest parsed; its container command run once per JOB_COMPLETION_INDEX, then the merge pod's."""
    text = section("Kubernetes indexed Job")
    job = yaml.safe_load(blocks(text, "yaml")[0])
    spec = job["spec"]
    assert (job["kind"], spec["completionMode"]) == ("Job", "Indexed")
    container = spec["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    parts = tmp_path / "volume-parts"
    parts.mkdir()
    where = {"/data/val": [str(data)], "resnet50": [MODEL, *PLAIN_FLAGS]}
    command = [new for arg in container["command"]
               for new in where.get(arg, [arg.replace(mounts["parts"], str(parts))])]
    run = runner(tmp_path)
    for index in range(spec["completions"]):
        assert run.run(command, tmp_path, {"JOB_COMPLETION_INDEX": str(index)}) == 0
    merge = re.search(r"runs `(nnprobe merge '/parts/[^`]*)`", text).group(1).replace(mounts["parts"], str(parts))
    assert run.bash(merge, tmp_path) == single[1]
    assert_merged_equals_single(sorted(parts.glob("part-*.json")), spec["completions"], single)


def _submissions(block: str) -> list[list[str]]:
    """The `aws batch submit-job` calls of the block, each as argv (continuation lines joined)."""
    joined = block.replace("\\\n", " ")
    calls = []
    for line in joined.splitlines():
        found = re.search(r"aws batch submit-job .*?(?=\)\s*$|$)", line.strip())
        if found:
            calls.append(shlex.split(found.group(0)))
    return calls


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_aws_batch_array_job(tmp_path, data, single):
    """Each child of the array runs the container command (sh -c) with AWS_BATCH_JOB_ARRAY_INDEX in its own
    container folder and copies its part to the bucket; the merge job reads the bucket (a local S3 server)."""
    from s3_server import moto_s3

    array, merge_job = _submissions(blocks(section("AWS Batch array job"), "bash")[0])
    size = int(re.fullmatch(r"size=(\d+)", _option(array, "--array-properties")).group(1))
    command = json.loads(_option(array, "--container-overrides").removeprefix("command="))
    merge = json.loads(_option(merge_job, "--container-overrides").removeprefix("command="))
    assert command[:2] == ["sh", "-c"] and merge[:2] == ["nnprobe", "merge"]
    assert _option(merge_job, "--depends-on") == "jobId=$array"
    script = command[2].replace("/data/val", str(data)).replace("--model resnet50", TINY)

    with moto_s3("bucket") as client:
        def aws(argv: list[str]) -> int:  # `aws s3 cp FILE s3://bucket/prefix/`, as the AWS CLI does it
            assert argv[:2] == ["s3", "cp"] and len(argv) == 4, f"aws s3 cp takes one file here: {argv}"
            source, target = Path(argv[2]), argv[3]
            bucket, _, prefix = target.removeprefix("s3://").partition("/")
            client.upload_file(str(source), bucket, prefix + source.name)
            return 0

        run = runner(tmp_path, aws=aws)
        for index in range(size):
            container = tmp_path / f"container-{index}"  # each child starts in a fresh container
            container.mkdir()
            assert run.bash(script, container, {"AWS_BATCH_JOB_ARRAY_INDEX": str(index),
                                                "AWS_BATCH_JOB_ID": f"abc:{index}"}) == 0
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="bucket")["Contents"])
        assert len(keys) == size
        assert run.run(merge, tmp_path) == single[1]
        local = tmp_path / "downloaded"
        local.mkdir()
        for key in keys:
            client.download_file("bucket", key, str(local / Path(key).name))
    assert_merged_equals_single(sorted(local.glob("part-*.json")), size, single)


def test_google_batch_job(tmp_path, data, single):
    """The job config parsed; each task runs the runnable's entrypoint and commands with BATCH_TASK_INDEX and
    BATCH_TASK_COUNT, the Cloud Storage volumes mounted (here: folders); then the page's merge."""
    text = section("Google Cloud Batch")
    group = json.loads(blocks(text, "json")[0])["taskGroups"][0]
    runnable = group["taskSpec"]["runnables"][0]["container"]
    mounts = {v["mountPath"]: tmp_path / Path(v["gcs"]["remotePath"]).name for v in group["taskSpec"]["volumes"]}
    data_mount, parts_mount = mounts
    (mounts[data_mount]).mkdir()
    (mounts[data_mount] / "val").symlink_to(data)
    mounts[parts_mount].mkdir()
    assert runnable["entrypoint"] == "/bin/sh" and runnable["commands"][0] == "-c"
    script = runnable["commands"][1].replace("--model resnet50", TINY)
    for mount, folder in mounts.items():
        script = script.replace(mount, str(folder))
    run = runner(tmp_path)
    count = group["taskCount"]
    for index in range(count):
        assert run.bash(script, tmp_path, {"BATCH_TASK_INDEX": str(index), "BATCH_TASK_COUNT": str(count)}) == 0
    merge = re.search(r"`(nnprobe merge 'gs://my-bucket/run-42/part-\*\.json'[^`]*)`", text).group(1)
    merge = merge.replace("gs://my-bucket/run-42", str(mounts[parts_mount]))  # the bucket, as the task saw it
    assert run.bash(merge, tmp_path) == single[1]
    assert_merged_equals_single(sorted(mounts[parts_mount].glob("part-*.json")), count, single)


def test_github_actions_matrix_ending_in_merge(tmp_path, data, single):
    """The workflow parsed; one runner per matrix entry runs the job's nnprobe steps with ${{ matrix.k }}
    expanded and uploads its artifact; the merge job downloads them all into parts/ and runs its step."""
    workflow = yaml.safe_load(blocks(section("GitHub Actions matrix ending in merge"), "yaml")[0])
    eval_job, merge_job = workflow["jobs"]["eval"], workflow["jobs"]["merge"]
    assert merge_job["needs"] == "eval"
    matrix = eval_job["strategy"]["matrix"]["k"]
    repository = tmp_path / "checkout"
    shutil.copytree(data, repository / "val")  # actions/checkout: the data as the workflow names it
    run = runner(tmp_path)
    artifacts = tmp_path / "artifacts"
    for k in matrix:
        workspace = tmp_path / f"runner-{k}"  # each matrix entry runs on its own runner
        shutil.copytree(repository, workspace)
        for step in eval_job["steps"]:
            if "nnprobe" in step.get("run", ""):
                script = step["run"].replace("${{ matrix.k }}", str(k)).replace("--model cand.pt2", TINY)
                assert run.bash(script, workspace, {"GITHUB_ACTIONS": "true"}) == 0
            elif step.get("uses", "").startswith("actions/upload-artifact"):
                name = step["with"]["name"].replace("${{ matrix.k }}", str(k))
                (artifacts / name).mkdir(parents=True)
                for file in workspace.glob(step["with"]["path"]):
                    shutil.copy(file, artifacts / name / file.name)
    workspace = tmp_path / "runner-merge"
    shutil.copytree(repository, workspace)
    for step in merge_job["steps"]:
        if step.get("uses", "").startswith("actions/download-artifact"):
            options = step["with"]
            assert options["merge-multiple"] is True
            target = workspace / options["path"]
            target.mkdir()
            for folder in artifacts.glob(options["pattern"]):
                for file in folder.iterdir():
                    shutil.copy(file, target / file.name)
        elif "nnprobe merge" in step.get("run", ""):
            assert run.bash(step["run"], workspace, {"GITHUB_ACTIONS": "true"}) == single[1]
    assert_merged_equals_single(sorted((workspace / "parts").glob("part-*.json")), len(matrix), single)
