"""Each "cannot run code" claim of docs/safety.md, tested with a crafted payload that would create a marker
file, plus the one-sentence refusals of files that are not models at all."""
from __future__ import annotations

import io
import pickle
import zipfile

import pytest
import torch
from model_helpers import TinyNet
from pt2_helpers import Payload

from nnprobe.errors import InputError, ModelLoadError, UnsafeCheckpointError, UsageError
from nnprobe.models import load_classifier
from nnprobe.models.checkpoints import read_checkpoint


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    assert not path.exists()
    return path


def test_torchscript_unpickler_builds_no_python_objects(tmp_path, marker):
    """torch.jit.load's unpickler resolves classes only from the archive's TorchScript code and torch's
    own types: a Python payload in data.pkl is an error, never a call, trusted or not."""
    clean = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(TinyNet(3)), str(clean))
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith(("/data.pkl", "/constants.pkl")):
                data = pickle.dumps(Payload(str(marker)), protocol=2)
            dst.writestr(info, data)
    for trust in (False, True):
        with pytest.raises(ModelLoadError, match="not a readable TorchScript file"):
            load_classifier(str(evil), trust_pickle=trust)
    assert not marker.exists()
    assert load_classifier(str(clean)).num_classes == 3


@pytest.mark.parametrize("fmt", ["legacy-torch.save", "raw-pickle-protocol-0", "raw-pickle-protocol-5"])
def test_legacy_and_raw_pickles_never_run_without_trust(tmp_path, marker, fmt):
    path = tmp_path / "evil.pth"
    if fmt == "legacy-torch.save":
        torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Payload(str(marker))}, path,
                   _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(Payload(str(marker)), protocol=int(fmt[-1])))
    with pytest.raises(UnsafeCheckpointError, match="beyond tensors.*--trust-pickle"):
        load_classifier(str(path), arch="resnet18")
    assert not marker.exists()
    try:
        read_checkpoint(str(path), trust_pickle=True)  # the payload really is live
    except ModelLoadError:
        pass  # a raw pickle is not a torch.save file: torch fails after unpickling it
    assert marker.exists()


def test_lightning_style_hyperparameters_are_refused_naming_the_class(tmp_path, resnet18_state):
    """A Lightning .ckpt pickles its hyper-parameters as its own classes; the weights-only unpickler refuses
    the whole file, and the message says which class and what to do."""
    from pt2_helpers import AttributeDict

    path = tmp_path / "epoch=3.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in resnet18_state.items()},
                "hyper_parameters": AttributeDict(lr=0.1, arch="resnet18")}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"\(e\.g\. pt2_helpers\.AttributeDict\).*re-save it as a state "
                                                    r"dict or safetensors, or pass --trust-pickle"):
        load_classifier(str(path), arch="resnet18")
    assert load_classifier(str(path), arch="resnet18", trust_pickle=True).num_classes == 10


def test_safetensors_header_is_data_only(tmp_path, marker):
    """safetensors reads a JSON header and raw bytes: a header naming code is just a malformed file."""
    header = ('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": '
              f'{{"x": "{Payload.__module__}"}}, "evil": {{"__reduce__": "open"}}}}').encode()
    path = tmp_path / "evil.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
        load_classifier(str(path), arch="resnet18")
    assert not marker.exists()


@pytest.mark.parametrize("content", [
    b"", b"hello\n", (2**62).to_bytes(8, "little") + b"{}", (10).to_bytes(8, "little") + b"{not json}",
    (30).to_bytes(8, "little") + b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}',
])
def test_malformed_safetensors_are_one_sentence(tmp_path, content):
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
        load_classifier(str(path), arch="resnet18")


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".pt2", ".safetensors", ".ts", ".bin"])
@pytest.mark.parametrize("content", [b"", b"hello\n", bytes(range(256)) * 16])
def test_text_empty_and_junk_files_are_not_models(tmp_path, suffix, content):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="not a readable") as info:
        load_classifier(str(path), arch="resnet18")
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_folders_fifos_and_devices_are_refused_without_reading(tmp_path):
    import os

    folder = tmp_path / "model.pth"
    folder.mkdir()
    fifo = tmp_path / "fifo.pth"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.pth"
    zero.symlink_to("/dev/zero")
    for path, message in ((folder, "is a folder"), (fifo, "not a regular file"), (zero, "not a regular file")):
        with pytest.raises(InputError, match=message):
            load_classifier(str(path), arch="resnet18")


@pytest.mark.parametrize("k", [0, -1, 10**12])
def test_num_classes_out_of_range(k):
    with pytest.raises(UsageError, match="--num-classes must be between 1 and"):
        load_classifier("resnet18", weights="none", num_classes=k)


def test_torch_load_reads_from_the_bytes_it_checked(tmp_path, resnet18_state):
    """read_checkpoint parses exactly the bytes it read once (no second open of the path)."""
    path = tmp_path / "w.pth"
    buffer = io.BytesIO()
    torch.save(resnet18_state, buffer)
    path.write_bytes(buffer.getvalue())
    state = read_checkpoint(str(path))
    assert torch.equal(state["fc.weight"], resnet18_state["fc.weight"])
