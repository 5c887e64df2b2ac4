"""Hostile --model files through the CLI (eval, fool, robust): crafted .pt2 archives and pickles never run
code, and a file that is not a model (text, junk, empty, truncated, a folder, a FIFO, /dev/zero, bad
--num-classes) is exit 2 with one sentence; no input changes, no marker appears, nothing hangs."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
from helpers import run_cli
from hostile_helpers import Inputs, expect_refusal
from model_helpers import SAMPLES, write_bytes
from pt2_helpers import Payload, clean_archive, crafted

PHOTO = SAMPLES / "n02123045" / "cat.jpg"
VERBS = ["eval", "fool", "robust"]


def argv(verb: str, data, model: str, *extra: str) -> list[str]:
    if verb == "fool":
        return ["fool", str(PHOTO), "--model", model, "-o", str(data.parent / "adv.png"), *extra]
    if verb == "robust":
        return ["robust", str(data), "--model", model, "--workers", "0", "--eps", "0,1/255", *extra]
    return ["eval", str(data), "--model", model, "--workers", "0", *extra]


@pytest.fixture
def data(tmp_path):
    from helpers import make_wnid_folders

    return make_wnid_folders(tmp_path / "data", {5: 1})


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "pwned"


PT2_KINDS = ["pickled-weight", "pickled-constant", "opaque-object", "sample-inputs", "legacy-weights-file",
             "sympy-expression", "guards-code", "range-constraint", "call-target", "aotinductor", "legacy-layout"]


@pytest.mark.parametrize("verb, kind", [(VERBS[i % 3], kind) for i, kind in enumerate(PT2_KINDS)])
def test_crafted_pt2_is_refused_and_runs_nothing(tmp_path, data, marker, invoke, verb, kind):
    model = crafted(kind, tmp_path, marker)
    inputs = Inputs(model, data, PHOTO)
    expect_refusal(invoke(*argv(verb, data, str(model))), 2, str(model), "--trust-pickle")
    inputs.unchanged()
    assert not marker.exists()
    assert not (tmp_path / "adv.png").exists()


@pytest.mark.parametrize("verb, writer", [("eval", "torch.save"), ("fool", "pickle.dump"), ("robust", "legacy")])
def test_malicious_pickle_checkpoint(tmp_path, data, marker, invoke, verb, writer):
    model = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": torch.zeros(1)}, "x": Payload(str(marker))}
    if writer == "pickle.dump":
        model.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, model, _use_new_zipfile_serialization=writer == "torch.save")
    inputs = Inputs(model, data)
    expect_refusal(invoke(*argv(verb, data, str(model), "--arch", "resnet18")), 2, "beyond tensors", "--trust-pickle")
    inputs.unchanged()
    assert not marker.exists()


def _text(path):
    path.write_text("hello\n")


def _empty(path):
    path.write_bytes(b"")


def _truncated_zip(path):
    torch.save({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:300])


NOT_MODELS = [("model.pth", _text, "not a readable PyTorch checkpoint"),
              ("model.pt", write_bytes, "not a readable PyTorch checkpoint"),
              ("model.ckpt", _empty, "not a readable PyTorch checkpoint"),
              ("model.pt2", write_bytes, "not a readable torch.export program"),
              ("model.pt2", _text, "not a readable torch.export program"),
              ("model.safetensors", write_bytes, "not a readable safetensors file"),
              ("model.safetensors", _empty, "not a readable safetensors file"),
              ("model.ts", write_bytes, "not a readable PyTorch checkpoint"),
              ("model.pth", _truncated_zip, "not a readable PyTorch checkpoint")]


@pytest.mark.parametrize("verb, name, make, message", [(VERBS[i % 3], *case) for i, case in enumerate(NOT_MODELS)])
def test_files_that_are_not_models(tmp_path, data, invoke, verb, name, make, message):
    model = tmp_path / name
    make(model)
    inputs = Inputs(model, data)
    expect_refusal(invoke(*argv(verb, data, str(model), "--arch", "resnet18")), 2, message)
    inputs.unchanged()


def test_truncated_pt2(tmp_path, data, invoke):
    model = clean_archive(tmp_path)
    model.write_bytes(model.read_bytes()[:2000])
    inputs = Inputs(model, data)
    expect_refusal(invoke(*argv("eval", data, str(model))), 2, "not a readable torch.export program")
    inputs.unchanged()


def test_a_folder_as_model(tmp_path, data, invoke):
    folder = tmp_path / "model.pth"
    folder.mkdir()
    expect_refusal(invoke(*argv("robust", data, str(folder))), 2, "is a folder")


@pytest.mark.parametrize("verb", ["eval", "fool"])
def test_fifo_named_model_pth_does_not_hang(tmp_path, data, verb):
    fifo = tmp_path / "model.pth"
    os.mkfifo(fifo)
    proc = run_cli(*argv(verb, data, str(fifo), "--arch", "resnet18"))  # run_cli has a 300 s timeout
    expect_refusal(proc, 2, "not a regular file")


def test_symlink_to_dev_zero_is_not_read(tmp_path, data):
    link = tmp_path / "model.pth"
    link.symlink_to("/dev/zero")
    proc = run_cli(*argv("eval", data, str(link), "--arch", "resnet18"))
    expect_refusal(proc, 2, "not a regular file")


@pytest.mark.parametrize("value", ["9" * 5000, "-3", "0", "1e3"])
def test_num_classes_out_of_range(data, invoke, value):
    expect_refusal(invoke(*argv("eval", data, "resnet18", "--weights", "none", "--num-classes", value)), 2,
                   "--num-classes")


def test_malformed_safetensors_header(tmp_path, data, invoke):
    model = tmp_path / "w.safetensors"
    header = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 99999]}}'
    model.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    inputs = Inputs(model, data)
    expect_refusal(invoke(*argv("fool", data, str(model), "--arch", "resnet18")), 2, "not a readable safetensors file")
    inputs.unchanged()
