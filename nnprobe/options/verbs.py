"""Each verb's options: which groups it takes, under which name. The CLI builds its click options from these
(cli/options.py), the API its keywords (api.py), the guards and the hostile tests their path lists."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from nnprobe.errors import UsageError
from nnprobe.options.attack import FoolAttackOptions, PhotoInputs, RobustAttackOptions, SeedOptions
from nnprobe.options.base import Options, Spec, nearest
from nnprobe.options.corruptions import CorruptionOptions
from nnprobe.options.data import DataOptions
from nnprobe.options.diagnose import DiagnoseOptions, FollowOptions, LogOptions, ProbeOptions
from nnprobe.options.evaluate import EvalSettings
from nnprobe.options.intervals import BootstrapOptions, ConfidenceOptions, IntervalOptions, ParityOptions
from nnprobe.options.gates import BaselineOptions, ComparisonGates, EvalGates, RobustGates
from nnprobe.options.merge import CompareInputs, MergeInputs, MergeGates
from nnprobe.options.model import CatalogOptions, EvalModelOptions, ModelOptions
from nnprobe.options.outputs import PerSampleOptions, PlotOptions, ReportOptions
from nnprobe.options.run import AttackLoaderOptions, DeviceOptions, LoaderOptions, QuietOptions, ScaleOptions, ShardOptions

Groups = dict[str, type[Options]]
__all__ = ["VERBS", "build", "fields", "RobustAttackOptions"]

EVAL: Groups = dict(data=DataOptions, model=EvalModelOptions, settings=EvalSettings, plot=PlotOptions, gates=EvalGates,
                    intervals=IntervalOptions, parity=ParityOptions, per_sample=PerSampleOptions,
                    baseline=BaselineOptions, shard=ShardOptions, scale=ScaleOptions,
                    loader=LoaderOptions, device=DeviceOptions, report=ReportOptions)
ROBUST: Groups = dict(data=DataOptions, model=ModelOptions, attack=RobustAttackOptions, gates=RobustGates,
                      plot=PlotOptions, corruption=CorruptionOptions, loader=AttackLoaderOptions,
                      per_sample=PerSampleOptions, intervals=BootstrapOptions, baseline=BaselineOptions,
                      shard=ShardOptions,
                      scale=ScaleOptions, device=DeviceOptions, report=ReportOptions)
CORRUPTIONS: Groups = dict(data=DataOptions, model=ModelOptions, corruption=CorruptionOptions,
                           loader=AttackLoaderOptions, seed=SeedOptions, intervals=BootstrapOptions,
                           shard=ShardOptions, scale=ScaleOptions, device=DeviceOptions, report=ReportOptions)
FOOL: Groups = dict(inputs=PhotoInputs, model=ModelOptions, attack=FoolAttackOptions, device=DeviceOptions,
                    quiet=QuietOptions, report=ReportOptions)
DIAGNOSE: Groups = dict(diagnose=DiagnoseOptions, probe=ProbeOptions, plot=PlotOptions, follow=FollowOptions,
                        report=ReportOptions)
DIAGNOSE_ONLY: Groups = dict(diagnose=DiagnoseOptions, probe=ProbeOptions)  # the API's diagnose
FOLLOW: Groups = dict(diagnose=LogOptions, follow=FollowOptions, report=ReportOptions)
COMPARE: Groups = dict(inputs=CompareInputs, gates=ComparisonGates, intervals=ConfidenceOptions, report=ReportOptions)
MERGE: Groups = dict(inputs=MergeInputs, gates=MergeGates, per_sample=PerSampleOptions, report=ReportOptions)
CORRUPTIONS_CLI: Groups = dict(CORRUPTIONS, plot=PlotOptions)
MODELS_ONLY: Groups = dict(catalog=CatalogOptions)  # the API's list_models
MODELS: Groups = dict(MODELS_ONLY, report=ReportOptions)
VERBS: dict[str, Groups] = {"eval": EVAL, "robust": ROBUST, "corruptions": CORRUPTIONS_CLI, "fool": FOOL,
                            "diagnose": DIAGNOSE, "follow": FOLLOW, "compare": COMPARE, "merge": MERGE,
                            "models": MODELS}


def fields(groups: Groups) -> Iterator[tuple[str, str, Spec]]:
    """(group, field, spec) for every option of a verb."""
    for key, cls in groups.items():
        if cls is None:
            continue
        for name, spec in cls.specs():
            yield key, name, spec


def build(groups: Groups, values: Mapping[str, Any], *, skip: tuple[str, ...] = ()) -> dict[str, Options]:
    """The verb's option groups from keywords named as the fields (the Python API's spelling); every value
    through its field's parser. A keyword no group knows is a UsageError naming the nearest valid one."""
    known = {name for _, name, spec in fields(groups) if spec.api}
    for name in values:
        if name not in known and name not in skip:
            raise UsageError(f"Unknown keyword {name!r}{nearest(name, sorted(known))}")
    built = {}
    for key, cls in groups.items():
        if cls is None:
            continue
        built[key] = cls.parse(**{name: values[name] for name, spec in cls.specs() if spec.api and name in values})
    return built
