"""Real torch.export archives (.pt2), clean and crafted: each crafted one carries a payload that creates a
marker file when torch.export.load (or the loaded module) runs it, one per code path torch has.

The payloads are live: with trust_pickle=True the same files create the marker (tests check that too),
so a refusal without it proves the vetting, not a broken payload."""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn


class Payload:
    """Unpickling this opens (creates) the marker file: the proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class AttributeDict(dict):
    """Like Lightning's hyper-parameter container: a class of the trainer's own, pickled by reference."""


class WithConstant(nn.Module):
    """A tiny classifier with a tensor constant (exported to data/constants/), any input size."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.fc = nn.Linear(4, num_classes)
        self.offset = torch.linspace(-1, 1, num_classes)  # a plain tensor attribute: a lifted constant

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3))) + self.offset


def export_net(net: nn.Module, path: Path, batch: int = 2, size: int = 16, dynamic: bool = True) -> Path:
    from torch.export import Dim

    example = (torch.rand(batch, 3, size, size),)
    shapes = ({0: Dim("batch", min=1, max=4096)},) if dynamic else None
    torch.export.save(torch.export.export(net.eval(), example, dynamic_shapes=shapes), str(path))
    return path


def clean_archive(folder: Path, name: str = "clean.pt2", dynamic: bool = True) -> Path:
    torch.manual_seed(0)
    return export_net(WithConstant(), folder / name, dynamic=dynamic)


def _rewrite(src: Path, dst: Path, edit, extra: dict[str, bytes] | None = None, top_level: dict | None = None) -> Path:
    """Copy src to dst, passing each entry (name without the archive's root folder, bytes) through edit."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            name = info.filename[len(root) + 1:]
            zout.writestr(info, edit(name, zin.read(info.filename)))
        for name, data in (extra or {}).items():
            zout.writestr(f"{root}/{name}", data)
        for name, data in (top_level or {}).items():
            zout.writestr(name, data)
    return dst


def _torch_saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _edit_json(name_suffix: str, change):
    def edit(name, data):
        if name.endswith(name_suffix):
            obj = json.loads(data)
            change(obj)
            return json.dumps(obj).encode()
        return data
    return edit


def crafted(kind: str, folder: Path, marker: Path) -> Path:
    """A .pt2 that runs `open(marker, "w")` through one of torch.export's code paths (see KINDS)."""
    clean = clean_archive(folder, f"clean-{kind}.pt2")
    dst = folder / f"evil-{kind}.pt2"
    payload = Payload(str(marker))
    code = f"open({str(marker)!r},'w')"
    if kind == "pickled-weight":
        with zipfile.ZipFile(clean) as archive:
            config_name = next(n for n in archive.namelist() if n.endswith("model_weights_config.json"))
            weight = json.loads(archive.read(config_name))["config"]["conv.weight"]["path_name"]

        def change(config):
            config["config"]["conv.weight"]["use_pickle"] = True
        edit_config = _edit_json("model_weights_config.json", change)
        return _rewrite(clean, dst, lambda n, d: _torch_saved(payload) if n == f"data/weights/{weight}"
                        else edit_config(n, d))
    if kind == "pickled-constant":
        def change(config):
            config["config"]["offset"]["use_pickle"] = True
        edit_config = _edit_json("model_constants_config.json", change)
        return _rewrite(clean, dst, lambda n, d: _torch_saved(payload) if n == "data/constants/tensor_0"
                        else edit_config(n, d))
    if kind in ("opaque-object", "custom-object"):
        prefix = "opaque_obj_0" if kind == "opaque-object" else "custom_obj_0"

        def change(config):
            config["config"]["offset"].update(path_name=prefix, use_pickle=True, tensor_meta=None)  # as torch writes
        return _rewrite(clean, dst, _edit_json("model_constants_config.json", change),
                        extra={f"data/constants/{prefix}": pickle.dumps(payload)})
    if kind == "sample-inputs":
        return _rewrite(clean, dst, lambda n, d: _torch_saved((payload,)) if n == "data/sample_inputs/model.pt" else d)
    if kind == "legacy-weights-file":
        return _rewrite(clean, dst, lambda n, d: d, extra={"data/weights/model.pt": _torch_saved({"w": payload})})
    if kind == "sympy-expression":
        dyn = clean  # exported with a dynamic batch: its shapes hold Symbol(...) expressions

        def edit(name, data):
            if name == "models/model.json":
                text = data.decode()
                start = text.index('"expr_str": "') + len('"expr_str": "')
                end = text.index('"', start)
                return (text[:start] + code.replace("'", "\\u0027") + text[end:]).encode()
            return data
        return _rewrite(dyn, dst, edit)
    if kind == "guards-code":
        return _rewrite(clean, dst, _edit_json("models/model.json",
                                               lambda m: m.__setitem__("guards_code", [f"{code} is None"])))
    if kind == "range-constraint":
        def change(m):
            key = next(iter(m["range_constraints"]))
            m["range_constraints"][key]["max_val"] = code
        return _rewrite(clean, dst, _edit_json("models/model.json", change))
    if kind == "call-target":
        def change(m):
            node = m["graph_module"]["graph"]["nodes"][0]
            node["target"] = "torch.os.system"
        return _rewrite(clean, dst, _edit_json("models/model.json", change))
    if kind == "aotinductor":
        return _rewrite(clean, dst, lambda n, d: d, extra={"data/aotinductor/model/model.so": b"\x7fELF"})
    if kind == "legacy-layout":
        return _rewrite(clean, dst, lambda n, d: d, top_level={"version": b"8.0", "serialized_state_dict.pt":
                                                               _torch_saved({"w": payload})})
    raise ValueError(kind)


# kind -> whether a trusted load (load + one forward) really runs the payload with this torch
KINDS = {"pickled-weight": True, "pickled-constant": True, "opaque-object": True, "custom-object": False,
         "sample-inputs": True, "legacy-weights-file": True, "sympy-expression": True, "guards-code": True,
         "range-constraint": False, "call-target": False, "aotinductor": False, "legacy-layout": False}
