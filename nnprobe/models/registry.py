"""The model-source registry: each source registers its loader by decorator under a stable id (a duplicate
id raises), with how it recognises a `--model` spec: a prefix (`timm:`), file suffixes (`.pt2`) or a
predicate. Where a spec could match several, the lowest `priority` claims it (a `.py:fn` factory before a
file, a file before a torchvision name). No torch here: `import nnprobe.models` stays light.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from nnprobe.errors import ModelLoadError

if TYPE_CHECKING:
    from nnprobe.models.classifier import Classifier


@dataclass(frozen=True)
class ModelRequest:
    """What the user asked for besides the spec; each source uses what applies to it."""

    weights: str | None = None
    arch: str | None = None
    trust_pickle: bool = False
    num_classes: int | None = None


Loader = Callable[[str, ModelRequest], "Classifier"]


@dataclass(frozen=True)
class ModelSource:
    """`load(name, request)`: `name` is the spec without the source's prefix when the prefix matched."""

    id: str
    load: Loader
    prefix: str | None = None
    suffixes: tuple[str, ...] = ()  # compared case-insensitively
    test: Callable[[str], bool] | None = None
    priority: int = 50
    accepts: str = ""  # how the error for an unknown spec names this source ("" = covered by another)

    def claims(self, spec: str) -> bool:
        return bool((self.prefix and spec.startswith(self.prefix)) or
                    (self.suffixes and spec.lower().endswith(self.suffixes)) or
                    (self.test and self.test(spec)))

    def name_in(self, spec: str) -> str:
        return spec[len(self.prefix):] if self.prefix and spec.startswith(self.prefix) else spec


_SOURCES: dict[str, ModelSource] = {}
MODEL_SOURCES = MappingProxyType(_SOURCES)  # id -> ModelSource, in registration order; read-only


def register_source(id: str, *, prefix: str | None = None, suffixes: tuple[str, ...] = (),
                    test: Callable[[str], bool] | None = None, priority: int = 50, accepts: str = ""):
    """Decorator: make a loader the source of the specs it claims; a duplicate id raises."""
    if not (prefix or suffixes or test):
        raise ValueError(f"model source {id!r} needs a prefix, suffixes or a test to claim specs")

    def decorator(load: Loader) -> Loader:
        if id in _SOURCES:
            raise ValueError(f"model source id {id!r} is registered twice")
        _SOURCES[id] = ModelSource(id, load, prefix, tuple(s.lower() for s in suffixes), test, priority, accepts)
        return load

    return decorator


def model_sources() -> tuple[ModelSource, ...]:
    """Every source in the order they are tried (priority, then registration order)."""
    order = {id: index for index, id in enumerate(_SOURCES)}
    return tuple(sorted(_SOURCES.values(), key=lambda s: (s.priority, order[s.id])))


def source_for(spec: str) -> ModelSource:
    """The one source that claims `spec`, or a ModelLoadError naming what is accepted."""
    for source in model_sources():
        if source.claims(spec):
            return source
    accepted = [s.accepts for s in _SOURCES.values() if s.accepts]
    listed = ", ".join(accepted[:-1]) + (", or " if len(accepted) > 1 else "") + accepted[-1]
    raise ModelLoadError(f"--model {spec!r} is not {listed}.")
