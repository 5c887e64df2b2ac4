"""`--model model.onnx`: an exported network run by onnxruntime (CPU; its CUDA provider when torch has a GPU
and onnxruntime offers it), wrapped as a Classifier so that eval, compare and `--reference-model` treat it
like any other source.

An .onnx file is data (a protobuf graph of standard operators; onnxruntime runs no Python), but it may name
external data files: every such path must stay inside the model's own folder (no absolute path, no `..`,
no link leading out), they are read here after that check, and onnxruntime gets the vetted bytes only, so
it opens no path itself. The export carries no preprocessing: ImageNet's by default, the reference
model's with `--reference-model`, or the flags'.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from nnprobe.errors import ModelLoadError, UsageError
from nnprobe.models.checkpoints import read_regular

ONNX_SUFFIXES = (".onnx",)
MAX_EXTERNAL_BYTES = 8 << 30  # external weights summed (a ViT-H is ~2.5 GB)


def _backends():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise UsageError("--model *.onnx needs onnx and onnxruntime: pip install 'nnprobe[onnx]'.") from None
    return onnx, onnxruntime


def _external_location(tensor) -> str:
    return {entry.key: entry.value for entry in tensor.external_data}.get("location", "")


def vet_external_data(model, path: str) -> int:
    """Check every external-data path of `model` (loaded from `path`) resolves to a regular file inside the
    model's folder; returns their total size. Refuses anything else with one sentence."""
    from onnx.external_data_helper import _get_all_tensors

    folder = os.path.dirname(os.path.realpath(path))
    total = 0
    for tensor in _get_all_tensors(model):
        if tensor.data_location != tensor.EXTERNAL:
            continue
        location = _external_location(tensor)
        resolved = os.path.realpath(os.path.join(folder, location))
        if not location or os.path.isabs(location) or os.path.commonpath([folder, resolved]) != folder:
            raise ModelLoadError(f"{path} names external data {location!r} outside the model's folder; "
                                 "nnprobe reads an ONNX model's external data only from beside it.")
        if not os.path.isfile(resolved):
            raise ModelLoadError(f"{path} names external data {location!r}, which is not a regular file "
                                 "beside the model.")
        total += os.path.getsize(resolved)
    if total > MAX_EXTERNAL_BYTES:
        raise ModelLoadError(f"{path} names {total >> 20} MiB of external data, more than nnprobe reads "
                             f"({MAX_EXTERNAL_BYTES >> 30} GiB).")
    return total


def _providers(onnxruntime) -> list[str]:
    available = onnxruntime.get_available_providers()
    if torch.cuda.is_available() and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxNet(nn.Module):
    """An onnxruntime session as a module: float NCHW (already normalised) in, the first output out, on the
    input's device. Not differentiable (eval and parity only; attacks need a torch model)."""

    def __init__(self, session, path: str) -> None:
        super().__init__()
        self.session, self.path = session, path
        first = session.get_inputs()[0]
        self.input_name = first.name
        self.fixed_batch = first.shape[0] if first.shape and isinstance(first.shape[0], int) else None
        self.providers = tuple(session.get_providers())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            raise UsageError(f"{self.path} runs in onnxruntime: it has no gradients, so it cannot be attacked; "
                             "attack the PyTorch model it was exported from.")
        array = x.detach().float().cpu().numpy()
        step = self.fixed_batch or len(array) or 1
        outputs = [self.session.run(None, {self.input_name: array[i:i + step]})[0] for i in range(0, len(array), step)]
        import numpy as np

        logits = np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
        return torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)).to(x.device)


def load_onnx(path: str, *, num_classes: int | None = None):
    """The Classifier of an .onnx file, its external data vetted and read here."""
    from nnprobe.models.classifier import from_network
    from nnprobe.models.files import _file_info

    onnx, onnxruntime = _backends()
    data = read_regular(path, "ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelLoadError(f"{path} is not a readable ONNX model ({type(exc).__name__}).") from None
    if vet_external_data(model, path):
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, os.path.dirname(os.path.realpath(path)))
        data = model.SerializeToString()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(data, sess_options=options, providers=_providers(onnxruntime))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented classes
        raise ModelLoadError(f"onnxruntime cannot run {path}: {str(exc).splitlines()[0][:200]}") from None
    net = OnnxNet(session, path)
    if num_classes is None:  # the graph's own output width when it is static (no test forward needed)
        width = session.get_outputs()[0].shape[-1] if session.get_outputs()[0].shape else None
        num_classes = width if isinstance(width, int) and width > 0 else None
    return from_network(net, source="onnx", architecture=None, **_file_info(path, num_classes))
