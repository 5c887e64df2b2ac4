"""Vetting a torch.export archive (.pt2) before torch reads it, so a crafted file cannot run code.

`torch.export.load` (torch 2.8-2.14, torch/export/pt2_archive/_package.py and torch/_export/serde/) runs
code from the archive in these places, none of which honours `torch.load(weights_only=True)`:

- weights and tensor constants marked `"use_pickle": true` in `data/weights/*_config.json` or
  `data/constants/*_config.json`: `torch.load(weights_only=False)`;
- constants named `custom_obj_*` (TorchScript unpickler) and `opaque_obj_*` (plain `pickle.loads`);
- `data/sample_inputs/*.pt` and the legacy `data/weights/<model>.pt` / `data/constants/<model>.pt`:
  `torch.load(weights_only=True)`, then *retried with weights_only=False* when that fails;
- the pre-2.8 layout (a top-level `version` entry: `serialized_*.pt`), read the same way;
- `data/aotinductor/`: a compiled shared library, loaded (native code) by `load_pt2`;
- the program's JSON: every `expr_str` (a symbolic shape) goes through `sympy.sympify`, which is `eval`;
  `guards_code` strings are compiled with `exec` into the module's forward; `range_constraints` bounds are
  printed into that code.

`vet` reads the archive with torch's own reader (no zip parser differential) and refuses each of these
unless the user trusts the file; the JSON strings must fit the small grammars torch itself prints.
The caller hands torch the very bytes that were vetted (`load_vetted`), so nothing can change in between.
"""
from __future__ import annotations

import ast
import io
import json
import re

from nnprobe.errors import ModelLoadError, UnsafeCheckpointError

SYMBOL = re.compile(r"[a-z]+[0-9]+\Z")  # torch's shape symbols: s0, u3, zuf1, ps2 ...
KEY = re.compile(r"\w+\Z")
MAX_EXPR_CHARS = 4000
# Names a printed sympy shape expression may use (torch/_export/serde/serialize.py `sympy_functions`, and
# the sympy classes str() prints); anything else, builtins included, is refused before sympify sees it.
SYMPY_NAMES = frozenset("""Symbol Integer Float Rational Max Min Eq Ne Lt Le Gt Ge And Or Not Abs floor ceiling
    Mod Pow Mul Add Piecewise oo zoo nan int_oo true false True False FloorDiv ModularIndexing Where PythonMod
    CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift PowByNatural FloatPow FloatTrueDiv IntTrueDiv
    IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt RoundToInt RoundDecimal ToFloat Identity""".split())
SYMBOL_KEYWORDS = frozenset({"positive", "integer", "real", "nonnegative", "finite", "negative", "nonpositive",
                             "zero", "nonzero", "even", "odd", "commutative"})
# Call targets a graph may name (what torch's verifier allows: operator overloads, higher-order ops, a few
# builtins and torch functions).
OPERATOR_NAMES = frozenset("""getitem add mul sub truediv ge le gt lt eq ne floordiv mod and_ or_ not_ pow neg abs
    lshift rshift""".split())
TORCH_FUNCTIONS = frozenset({"torch.sym_int", "torch.sym_float", "torch.sym_ite", "torch.sym_max", "torch.sym_min",
                             "torch.sym_not", "torch.sym_sqrt", "torch.sym_sum", "torch._sym_sqrt",
                             "torch.autograd.grad_mode.set_grad_enabled", "torch._C._set_grad_enabled",
                             "torch.amp.autocast_mode._enter_autocast", "torch.amp.autocast_mode._exit_autocast",
                             "torch.fx.experimental.symbolic_shapes.cast_symbool_to_symint_guardless"})
OP_TARGET = re.compile(r"torch\.ops\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)(\.[A-Za-z_]\w*)?\Z")
GUARD_CALLS = frozenset({"Max", "Min", "Abs", "FloorDiv", "CeilDiv", "PythonMod", "Mod", "floor", "ceil", "int",
                         "float"})


def _names():
    """The archive layout, from the installed torch (its constants moved between versions)."""
    try:
        from torch.export.pt2_archive import constants as c
    except ImportError:  # torch < 2.7: another layout, not vetted here
        return None
    get = lambda name, default: getattr(c, name, default)  # noqa: E731
    return dict(weights=get("WEIGHTS_DIR", "data/weights/"), constants=get("CONSTANTS_DIR", "data/constants/"),
                models=get("MODELS_DIR", "models/"), aoti=get("AOTINDUCTOR_DIR", "data/aotinductor/"),
                weights_config=get("WEIGHTS_CONFIG_FILENAME_FORMAT", "data/weights/{}_weights_config.json"),
                constants_config=get("CONSTANTS_CONFIG_FILENAME_FORMAT",
                                     "data/constants/{}_constants_config.json"),
                sample_inputs=get("SAMPLE_INPUTS_FILENAME_FORMAT", "data/sample_inputs/{}.pt"),
                tensor_prefix=get("TENSOR_CONSTANT_FILENAME_PREFIX", "tensor_"),
                version_path=get("ARCHIVE_VERSION_PATH", "archive_version"),
                version_value=get("ARCHIVE_VERSION_VALUE", "0"))


class _Refusal(Exception):
    """Something in the archive would run code when loaded; the text says what."""


def _unsafe(path: str, what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(f"{path} {what}, which could run code when torch.export loads it; pass --trust-pickle "
                                 "only if you trust the file.")


def vet(data: bytes, path: str) -> None:
    """Raise UnsafeCheckpointError if loading `data` with torch.export.load could run code from it, and
    ModelLoadError if it is not a torch.export archive at all."""
    import zipfile

    names = _names()
    if names is None:
        raise _unsafe(path, "is a torch.export archive this torch (< 2.7) cannot vet")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "version" in archive.namelist():  # exactly the condition of torch.export.load's legacy path
                raise _unsafe(path, "uses the pre-2.8 torch.export layout (serialized_*.pt, unpickled on load)")
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"{path} is not a readable torch.export program (not a .pt2 zip archive).") from exc
    reader = _reader(data, path)
    files = set(reader.get_file_names())
    version = reader.read_string(names["version_path"]) if names["version_path"] in files else None
    if version != names["version_value"]:
        raise ModelLoadError(f"{path} is not a torch.export program this torch can read (archive version).")
    if any(f.startswith(names["aoti"]) for f in files):
        raise _unsafe(path, "holds an AOTInductor shared library (native code)")
    models = [f[len(names["models"]):-len(".json")] for f in files if f.startswith(names["models"])]
    if not models:
        raise ModelLoadError(f"{path} is not a torch.export program (no model in the archive).")
    try:
        for model in models:
            _vet_model(reader, files, names, model, path)
    except _Refusal as refusal:
        raise _unsafe(path, str(refusal)) from None
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:  # malformed JSON or layout
        raise ModelLoadError(f"{path} is not a readable torch.export program ({type(exc).__name__}).") from exc


def _reader(data: bytes, path: str):
    """torch's own archive reader (PyTorchFileReader, the one load_pt2 uses): names resolve the same way."""
    from torch.export.pt2_archive._package import PT2ArchiveReader

    try:
        return PT2ArchiveReader(io.BytesIO(data))
    except Exception as exc:  # RuntimeError from the C++ zip reader on a truncated or odd archive
        raise ModelLoadError(f"{path} is not a readable torch.export program (a damaged .pt2 archive).") from exc


def _vet_model(reader, files: set[str], names: dict, model: str, path: str) -> None:
    weights_dir, constants_dir = names["weights"], names["constants"]
    for legacy in (f"{weights_dir}{model}.pt", f"{constants_dir}{model}.pt", names["sample_inputs"].format(model)):
        if legacy in files and not _weights_only(reader.read_bytes(legacy)):
            raise _Refusal(f"has pickled Python objects beyond tensors in {legacy}")
    for config_name, is_constants in ((names["weights_config"].format(model), False),
                                      (names["constants_config"].format(model), True)):
        if config_name not in files:
            continue
        config = json.loads(reader.read_string(config_name)).get("config", {})
        for fqn, meta in config.items():
            if meta.get("use_pickle"):
                raise _Refusal(f"declares its {'constant' if is_constants else 'weight'} {fqn!r} as a pickle")
            if is_constants and not str(meta.get("path_name", "")).startswith(names["tensor_prefix"]):
                raise _Refusal(f"declares its constant {fqn!r} as a pickled object")
    program = json.loads(reader.read_string(f"{names['models']}{model}.json"))
    _vet_program(program)


def _weights_only(data: bytes) -> bool:
    """Whether torch's weights-only unpickler (which never imports or calls anything it does not allow)
    reads `data`: then torch.export's first attempt succeeds on these same bytes and never falls back."""
    import warnings

    import torch

    if not data:
        return True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(io.BytesIO(data), weights_only=True)
    except Exception:  # any failure means torch would retry with weights_only=False: refuse
        return False
    return True


def _vet_program(program: dict) -> None:
    for guard in program.get("guards_code") or ():
        if not _guard_ok(guard):
            raise _Refusal("has shape-guard code that is not a plain shape comparison")
    for key, bounds in (program.get("range_constraints") or {}).items():
        if not SYMBOL.match(str(key)) or not isinstance(bounds, dict) or any(
                not (v is None or (type(v) is int)) for v in bounds.values()):
            raise _Refusal(f"has a malformed range constraint for {str(key)[:40]!r}")
    stack = [program]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr_str" and not _expr_ok(value):
                    raise _Refusal(f"has a symbolic shape that is not a plain expression ({str(value)[:40]!r})")
                if key in ("target", "as_operator") and isinstance(value, str) and not _target_ok(value):
                    raise _Refusal(f"calls {value[:60]!r}, not a torch operator")
                if isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))


def _target_ok(target: str) -> bool:
    if target in TORCH_FUNCTIONS:
        return True
    module, _, name = target.partition(".")
    if module == "_operator":
        return name in OPERATOR_NAMES
    if module == "math":
        return name in ("ceil", "floor", "trunc")
    match = OP_TARGET.match(target)
    if not match:
        return False
    import torch

    namespace, op = match.group(1), match.group(2)
    parts = [p.lstrip(".") for p in match.groups() if p]
    return (not any(p.startswith("__") for p in parts) and not hasattr(type(torch.ops), namespace)
            and not hasattr(torch._ops._OpNamespace, op))


def _parse(text, limit: int = MAX_EXPR_CHARS):
    if not isinstance(text, str) or len(text) > limit:
        return None
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _small_exponent(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) <= 64


def _number(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, bool) and (
        type(node.value) is not int or abs(node.value) < 10**30)


def _expr_ok(text) -> bool:
    """A shape expression as torch prints it: symbols, numbers, arithmetic, comparisons and the calls in
    SYMPY_NAMES (Symbol('s0', positive=True, integer=True) included); no attribute, subscript, string
    (but a symbol's name) or builtin, so sympify's eval can only build sympy objects."""
    tree = _parse(text)
    return tree is not None and _sym_node_ok(tree.body, nested_pow=False)


def _sym_node_ok(node, nested_pow: bool) -> bool:
    if _number(node):
        return True
    if isinstance(node, ast.Name):
        return bool(SYMBOL.match(node.id)) or node.id in SYMPY_NAMES
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        return _sym_node_ok(node.operand, nested_pow)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv,
                                                              ast.Mod, ast.Pow)):
        if isinstance(node.op, ast.Pow):  # bounded: no 9**9**9**9
            return not nested_pow and _small_exponent(node.right) and _sym_node_ok(node.left, nested_pow=True)
        return _sym_node_ok(node.left, nested_pow) and _sym_node_ok(node.right, nested_pow)
    if isinstance(node, ast.Compare):
        return all(_sym_node_ok(n, nested_pow) for n in [node.left, *node.comparators])
    if isinstance(node, ast.BoolOp):
        return all(_sym_node_ok(n, nested_pow) for n in node.values)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SYMPY_NAMES:
        if node.func.id == "Symbol":
            return (len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str) and bool(SYMBOL.match(node.args[0].value))
                    and all(k.arg in SYMBOL_KEYWORDS and isinstance(k.value, ast.Constant)
                            and type(k.value.value) is bool for k in node.keywords))
        return not node.keywords and all(_sym_node_ok(a, nested_pow) for a in node.args)
    return False


def _guard_ok(text) -> bool:
    """A shape guard as torch prints it (`L['x'].size()[0] <= 1024`): the inputs' sizes, numbers,
    arithmetic and comparisons; keys are plain words, so nothing can break out of the string torch pastes
    the guard into."""
    tree = _parse(text)
    return tree is not None and _guard_node_ok(tree.body)


def _input_ok(node) -> bool:
    """L['x'], L['x'][0], L['x']['k'] ... with plain keys."""
    while isinstance(node, ast.Subscript):
        key = node.slice
        if not (isinstance(key, ast.Constant) and (type(key.value) is int or (
                isinstance(key.value, str) and KEY.match(key.value)))):
            return False
        node = node.value
    return isinstance(node, ast.Name) and node.id == "L"


def _guard_node_ok(node) -> bool:
    if _number(node):
        return True
    if isinstance(node, ast.Subscript):  # L['x'].size()[0], or an input itself (an int argument)
        inner = node.value
        if (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)
                and inner.func.attr in ("size", "stride") and not inner.args and not inner.keywords
                and isinstance(node.slice, ast.Constant) and type(node.slice.value) is int):
            return _input_ok(inner.func.value)
        return _input_ok(node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
            "storage_offset", "dim") and not node.args and not node.keywords:
        return _input_ok(node.func.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        return _guard_node_ok(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv,
                                                              ast.Mod)):
        return _guard_node_ok(node.left) and _guard_node_ok(node.right)
    if isinstance(node, ast.Compare):
        return all(_guard_node_ok(n) for n in [node.left, *node.comparators])
    if isinstance(node, ast.BoolOp):
        return all(_guard_node_ok(n) for n in node.values)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in GUARD_CALLS:
        return not node.keywords and all(_guard_node_ok(a) for a in node.args)
    return False


def load_vetted(data: bytes, path: str, *, trust_pickle: bool):
    """The ExportedProgram in `data` (the file's bytes, read once): vetted first unless trusted, then
    loaded from those same bytes."""
    import logging

    import torch

    if not trust_pickle:
        vet(data, path)
    else:
        _reader(data, path)  # junk is "not readable", not a traceback from torch.export.load
    logs = [logging.getLogger(name) for name in ("torch.export", "torch._export")]
    previous = [log.level for log in logs]
    for log in logs:  # torch.export.load logs tracebacks (before raising on junk, on a pickle fallback)
        log.setLevel(logging.CRITICAL)
    try:
        return torch.export.load(io.BytesIO(data))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelLoadError(f"{path} is not a readable torch.export program ({type(exc).__name__}: "
                             f"{first}).") from exc
    finally:
        for log, level in zip(logs, previous):
            log.setLevel(level)
