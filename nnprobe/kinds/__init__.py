"""One record per result kind: what its JSON must hold when read back (schema), how its `--shard` slices
add up (merge), how two of it are compared, and the renderers it provides for each report format.

A kind's pieces live beside the code that computes them; this record is the one place that says which
pieces a kind has, so a format, a merge or a schema check cannot be forgotten for a new kind (the tests
walk `KINDS`). Pieces are named "module:attribute" and imported on use: this module imports neither
torch nor rich, and every layer may import it.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nnprobe.errors import DataError
from nnprobe.kinds import fields, schema

FORMATS = ("table", "json", "junit", "markdown", "github", "html")
VERSIONED = ("nnprobe", "torch", "torchvision")  # packages whose version can change a count


@dataclass(frozen=True)
class Kind:
    """A result kind: its JSON `kind`, its result class, and the pieces it provides ("module:attribute")."""

    name: str  # the JSON report's "kind"
    result: str  # the result dataclass
    renderers: Mapping[str, str]  # format -> its piece: table(result, console), junit cases, markdown lines ...
    check: Any = None  # schema checker of its JSON read back (None: nnprobe never reads this kind back)
    merge: str | None = None  # slices' dicts -> the whole's dict (`nnprobe merge`)
    compare: str | None = None  # the kind's fields of a Comparison
    rows: str | None = None  # per-sample rows of a result (`--save-predictions`)

    @property
    def json_only(self) -> Mapping[str, str]:
        """Fields (dotted paths) only the JSON report carries, and why (`fields.JSON_ONLY`)."""
        return fields.JSON_ONLY.get(self.name, {})

    @property
    def merged(self) -> Mapping[str, str]:
        """How merge adds up each field over slices (`fields.MERGE`); empty for kinds never merged."""
        return fields.MERGE.get(self.name, {})

    @property
    def compared(self) -> Mapping[str, str]:
        """What compare reads from each field (`fields.COMPARE`); empty for kinds never compared."""
        return fields.COMPARE.get(self.name, {})

    @property
    def type_name(self) -> str:
        return self.result.rsplit(":", 1)[1]

    def piece(self, role: str) -> Any:
        """The function (or class) behind one of the names above: `result`, `merge`, or a format."""
        target = self.renderers.get(role) if role in FORMATS else getattr(self, role)
        if target is None:
            raise TypeError(f"a {self.name} result has no {role}")
        module, name = target.split(":")
        return getattr(importlib.import_module(module), name)


_MD = "nnprobe.report.markdown"
_HTML = "nnprobe.report.html_results"
KINDS: tuple[Kind, ...] = (
    Kind("eval", "nnprobe.results:EvalResult", {
        "table": "nnprobe.report.eval_table:render", "junit": "nnprobe.report.junit:eval_cases",
        "markdown": f"{_MD}:eval_lines", "github": "nnprobe.report.github:skipped_annotations",
        "html": f"{_HTML}:eval_html"},
        check=schema.check_eval, merge="nnprobe.merging:merge_eval",
        compare="nnprobe.comparison.eval_compare:compare_eval", rows="nnprobe.per_sample:rows_of"),
    Kind("eval-models", "nnprobe.model_runs:ModelRuns", {
        "table": "nnprobe.report.model_runs:render_table", "junit": "nnprobe.report.model_runs:junit_cases",
        "markdown": "nnprobe.report.model_runs:markdown_lines", "github": "nnprobe.report.model_runs:github_annotations",
        "html": "nnprobe.report.model_runs:html_parts"}),
    Kind("models", "nnprobe.model_runs:ModelCatalog", {
        "table": "nnprobe.report.model_runs:catalog_table", "junit": "nnprobe.report.model_runs:catalog_cases",
        "markdown": "nnprobe.report.model_runs:catalog_lines", "github": "nnprobe.report.model_runs:no_annotations",
        "html": "nnprobe.report.model_runs:catalog_html"}),
    Kind("robust", "nnprobe.attacks.results:RobustResult", {
        "table": "nnprobe.report.robust_table:render", "junit": "nnprobe.report.junit:robust_cases",
        "markdown": f"{_MD}:robust_lines", "github": "nnprobe.report.github:skipped_annotations",
        "html": f"{_HTML}:robust_html"},
        check=schema.check_robust, merge="nnprobe.merging:merge_robust",
        compare="nnprobe.comparison.robust_compare:compare_robust", rows="nnprobe.per_sample:rows_of"),
    Kind("corruption", "nnprobe.imagenet_c.results:CorruptionResult", {
        "table": "nnprobe.report.corruption_table:render", "junit": "nnprobe.report.junit:corruption_cases",
        "markdown": f"{_MD}:corruption_lines", "github": "nnprobe.report.github:case_annotations",
        "html": f"{_HTML}:corruption_html"},
        check=schema.check_corruption, merge="nnprobe.merging:merge_corruption"),
    Kind("fool", "nnprobe.attacks.results:FoolResult", {
        "table": "nnprobe.report.fool_table:render", "junit": "nnprobe.report.junit:fool_cases",
        "markdown": f"{_MD}:fool_lines", "github": "nnprobe.report.github:case_annotations",
        "html": f"{_HTML}:fool_html"}),
    Kind("diagnose", "nnprobe.diagnosis.results:Diagnosis", {
        "table": "nnprobe.report.diagnose_table:render", "junit": "nnprobe.report.junit:diagnose_cases",
        "markdown": f"{_MD}:diagnose_lines", "github": "nnprobe.report.github:diagnose_annotations",
        "html": "nnprobe.report.html_diagnose:diagnose_html"},
        check=schema.check_diagnose, compare="nnprobe.comparison.diagnose_compare:match_findings"),
    Kind("compare", "nnprobe.comparison.results:Comparison", {
        "table": "nnprobe.report.compare_table:render", "junit": "nnprobe.report.junit:compare_cases",
        "markdown": "nnprobe.report.compare_markdown:compare_lines",
        "github": "nnprobe.report.github:case_annotations", "html": "nnprobe.report.html_diagnose:compare_html"}),
    Kind("variants", "nnprobe.variants.table:VariantTable", {
        "table": "nnprobe.report.variants_report:render", "junit": "nnprobe.report.variants_report:junit_cases",
        "markdown": "nnprobe.report.variants_report:markdown_lines", "github": "nnprobe.report.github:case_annotations",
        "html": "nnprobe.report.variants_report:html_parts"}),
)
_BY_NAME = {k.name: k for k in KINDS}
_BY_TYPE = {k.type_name: k for k in KINDS}


def named(name: str) -> Kind:
    """The kind whose JSON says `"kind": name`."""
    return _BY_NAME[name]


def of(result: Any) -> Kind:
    """The kind of a result object (by its type's name: no import of the result modules)."""
    kind = _BY_TYPE.get(type(result).__name__)
    if kind is None:
        raise TypeError(f"{type(result).__name__} is not an nnprobe result kind")
    return kind


def readable(names: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The kinds nnprobe reads back (those with a schema), optionally among `names`."""
    return tuple(k.name for k in KINDS if k.check is not None and (names is None or k.name in names))


def validate(body: Any, origin: str, kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    """`body` checked against its kind's schema (and, with `kinds`, refused unless it is one of them)."""
    allowed = readable(kinds)
    if not isinstance(body, Mapping) or body.get("kind") not in allowed:
        words = ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else allowed[0]
        raise DataError(f"{origin} is not an nnprobe {words} result (written with --format json).")
    schema.validate(body, origin, {k: named(k).check for k in allowed})
    return dict(body)


def read(path: Any, what: str, kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A result JSON file read back through every guard (`io.read_json`) and its kind's schema."""
    import os

    from nnprobe.io import read_json

    return validate(read_json(path, what), f"{what} {os.fspath(path)}", kinds)


def version_difference(one: Mapping[str, Any], other: Mapping[str, Any]) -> str | None:
    """The packages whose versions differ between two results (`run.versions`), in words; None if none."""
    left, right = ((b.get("run") or {}).get("versions") or {} for b in (one, other))
    differ = [f"{name} {left[name]} and {right[name]}" for name in VERSIONED
              if name in left and name in right and left[name] != right[name]]
    return ", ".join(differ) or None
