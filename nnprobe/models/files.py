"""Classifiers saved as files: TorchScript, torch.export programs, state dicts (with --arch), and, only
with --trust-pickle, whole pickled modules."""
from __future__ import annotations

import os

import torch
from torch import nn

from nnprobe.errors import InputError, ModelLoadError, UsageError
from nnprobe.models.checkpoints import extract_state_dict, is_torchscript, read_checkpoint, read_regular


def _exported_classes(program, path: str) -> int:
    """The class count from the program's recorded output shape (a forward could violate its shape guards,
    e.g. a program exported with a static batch of 8)."""
    try:
        output = next(n for n in program.graph.nodes if n.op == "output")
        first = output.args[0][0] if isinstance(output.args[0], (tuple, list)) else output.args[0]
        shape = first.meta["val"].shape
        if len(shape) == 2:
            return int(shape[1])
    except (StopIteration, KeyError, AttributeError, IndexError, TypeError):
        pass
    raise ModelLoadError(f"{path}: the exported program's output is not a (batch, classes) tensor of logits.")


def _input_shape(program) -> tuple | None:
    """The recorded shape of the program's one user input: ints where export fixed a size, None where the
    size is dynamic; None when there is not exactly one tensor input."""
    try:
        names = list(program.graph_signature.user_inputs)
        nodes = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in names]
        if len(nodes) != 1:
            return None
        shape = nodes[0].meta["val"].shape
    except (AttributeError, KeyError, TypeError):
        return None
    return tuple(d if isinstance(d, int) else None for d in shape)


class ExportedNet(nn.Module):
    """An exported program's module: its train/eval mode was fixed at export time and it refuses
    `.eval()`, so mode changes stop here instead of reaching it.

    A program exported with a fixed batch size B (no dynamic batch dim) only runs on batches of B: any
    other batch is split into chunks of B, the last one padded with copies of its first row, and the padded
    rows' logits dropped, so each image's logits are exactly those of a call on its chunk."""

    def __init__(self, program_module: nn.Module, input_shape: tuple | None = None, path: str = "") -> None:
        super().__init__()
        self.program = program_module
        self.input_shape = input_shape
        self.path = path

    @property
    def static_batch(self) -> int | None:
        return self.input_shape[0] if self.input_shape else None

    def forward(self, x):
        shape = self.input_shape
        if shape is not None and len(shape) == x.dim():
            if any(i and want not in (None, got) for i, (want, got) in enumerate(zip(shape, x.shape))):
                wanted = "x".join("N" if d is None else str(d) for d in shape[1:])
                raise InputError(f"{self.path} was exported for inputs of {wanted} pixels, not "
                                 f"{'x'.join(str(d) for d in x.shape[1:])}; set --resize/--crop to match.")
        batch = self.static_batch
        if batch is None or x.shape[0] == batch:
            return self.program(x)
        outputs = []
        for chunk in torch.split(x, batch):
            rows = chunk.shape[0]
            if rows < batch:
                chunk = torch.cat([chunk, chunk[:1].expand(batch - rows, *chunk.shape[1:])])
            outputs.append(self.program(chunk)[:rows])
        return torch.cat(outputs)

    def train(self, mode: bool = True):
        self.training = mode
        return self


def load_export(path: str, *, trust_pickle: bool, num_classes: int | None):
    """A torch.export program: the archive is vetted (export_archive.py), then torch reads the same bytes."""
    from nnprobe.models.classifier import from_network
    from nnprobe.models.export_archive import load_vetted

    program = load_vetted(read_regular(path), path, trust_pickle=trust_pickle)
    if num_classes is None:
        num_classes = _exported_classes(program, path)
    try:
        module = program.module()
    except Exception as exc:  # unlifting compiles the graph: a malformed program fails here
        raise ModelLoadError(f"{path} is not a runnable torch.export program ({type(exc).__name__}).") from exc
    return from_network(ExportedNet(module, _input_shape(program), path), source="export", architecture=None,
                        **_file_info(path, num_classes))


def _file_info(path: str, num_classes: int | None) -> dict:
    from nnprobe.models import IMAGENET_PREPROCESSING

    return dict(spec=path, weights=os.path.abspath(path), preprocessing=IMAGENET_PREPROCESSING,
                num_classes=num_classes)


def load_file(path: str, *, arch: str | None, trust_pickle: bool, num_classes: int | None):
    """TorchScript (told by its bytes), a pickled module (--trust-pickle only) or a state dict (--arch)."""
    from nnprobe.models.classifier import Classifier, from_network

    if path.lower().endswith(".pt2"):  # never through torch.load: the archive is vetted first
        return load_export(path, trust_pickle=trust_pickle, num_classes=num_classes)
    kwargs = _file_info(path, num_classes)
    data = read_regular(path)
    if is_torchscript(data):
        import io
        import warnings

        try:
            with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; the user's file is still fine
                warnings.simplefilter("ignore", FutureWarning)
                net = torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as exc:
            raise ModelLoadError(f"{path} is not a readable TorchScript file ({type(exc).__name__}).") from exc
        return from_network(net, source="torchscript", architecture=None, **kwargs)
    obj = read_checkpoint(path, trust_pickle=trust_pickle, data=data)
    if isinstance(obj, Classifier):
        return obj
    if isinstance(obj, nn.Module):  # reached only with --trust-pickle
        return from_network(obj, source="pickle", architecture=type(obj).__name__, **kwargs)
    state = extract_state_dict(obj, path)
    if not arch:
        raise UsageError(f"{path} is a state dict: name its architecture with --arch (e.g. --arch resnet50 or "
                         "--arch timm:convnext_tiny).")
    if arch.startswith("timm:"):
        from nnprobe.models.timm_source import load_timm

        return load_timm(arch[len("timm:"):], weights=path, trust_pickle=trust_pickle, num_classes=num_classes,
                         state=state)
    from nnprobe.models.torchvision_source import load_torchvision

    return load_torchvision(arch.removeprefix("torchvision:"), weights=path, trust_pickle=trust_pickle,
                            num_classes=num_classes, state=state)
