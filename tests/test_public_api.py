"""The public API is a product: every name in `nnprobe.__all__` works after every submodule has been
imported (no module shadows a verb), twice, in either order; `docs/api.md`'s examples run and print what
the page shows."""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import pkgutil
import re
import types
from pathlib import Path

import pytest
import torch
from helpers import PLAIN, factory_spec, make_wnid_folders, solid_image

import nnprobe

ROOT = Path(__file__).resolve().parent.parent
MODEL = factory_spec("color_net_1000")


def import_every_submodule() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(nnprobe.__path__, "nnprobe."):
        if info.name.endswith("__main__"):
            continue  # runs the CLI
        importlib.import_module(info.name)
        names.append(info.name)
    return names


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    data = make_wnid_folders(tmp / "data", {5: 2, 400: 1}, wrong={400: 1})  # top-1 3/4
    photo = solid_image(tmp / "photos" / "p.png", (0.3, 0.6, 0.2))
    return tmp, data, photo


def _calls(tmp: Path, data: Path, photo: Path):
    """name -> (call, check): one small real use of each public name."""
    counter = iter(range(1000))
    return {
        "evaluate": (lambda: nnprobe.evaluate(MODEL, data, workers=0, **PLAIN),
                     lambda r: (r.correct_top1, r.total) == (3, 4)),
        "robust": (lambda: nnprobe.robust(MODEL, data, eps="0,1/255", steps=1, workers=0, **PLAIN),
                   lambda r: [(p.total, p.clean_correct) for p in r.points] == [(4, 3), (4, 3)]),
        "fool": (lambda: nnprobe.fool(photo, MODEL, out_dir=tmp / f"out{next(counter)}", **PLAIN),
                 lambda r: len(r.items) == 1 and os.path.isfile(r.items[0].adversarial_image)),
        "corruptions": (lambda: nnprobe.corruptions(MODEL, data, corruptions="brightness", severity="1,3", workers=0,
                                                    **PLAIN),
                        lambda r: r.clean.total == 4 and [(p.corruption, p.severity) for p in r.points]
                        == [("brightness", 1), ("brightness", 3)]),
        "diagnose": (lambda: nnprobe.diagnose(ROOT / "samples" / "runs" / "healthy"), lambda r: not r.failed),
        "follow": (lambda: nnprobe.follow(ROOT / "samples" / "runs" / "healthy", poll="0.05", idle=0),
                   lambda r: r.status == "ended"),
        "merge": (lambda: nnprobe.merge([nnprobe.evaluate(MODEL, data, workers=0, shard=f"{k}/2", **PLAIN).to_dict()
                                         for k in (2, 1)]),
                  lambda r: (r.correct_top1, r.total, r.data["merged_from"]) == (3, 4, 2)),
        "compare": (lambda: nnprobe.compare(nnprobe.evaluate(MODEL, data, workers=0, **PLAIN),
                                            nnprobe.evaluate(MODEL, data, workers=0, **PLAIN), max_drop_top1="0.3pt"),
                    lambda r: r.passed and r.compared == "eval" and r.same_data and r.paired),
        "list_models": (lambda: nnprobe.list_models("def*"),
                        lambda r: [(e.spec, e.resize, e.crop, e.interpolation) for e in r.entries]
                        == [("default", 256, 224, "bicubic")]),
        "load_classifier": (lambda: nnprobe.load_classifier(MODEL, **PLAIN),
                            lambda c: isinstance(c, nnprobe.Classifier) and c.num_classes == 1000),
        "find_images": (lambda: nnprobe.find_images(data, nnprobe.load_classifier(MODEL, **PLAIN)),
                        lambda i: isinstance(i, nnprobe.LabelledImages) and len(i.samples) == 4),
        "Classifier": (lambda: nnprobe.Classifier, lambda c: issubclass(c, torch.nn.Module)),
        "LabelledImages": (lambda: nnprobe.LabelledImages, lambda c: isinstance(c, type)),
        "NnprobeError": (lambda: nnprobe.NnprobeError, lambda c: issubclass(c, Exception)),
        "ExitCode": (lambda: nnprobe.ExitCode, lambda c: int(c.USAGE) == 2),
    }


def test_every_public_name_has_a_case(world):
    assert set(nnprobe.__all__) - {"__version__"} == set(_calls(*world))


@pytest.mark.parametrize("order", ["forward", "reversed"])
def test_every_name_twice_after_every_submodule_is_imported(order, world):
    assert len(import_every_submodule()) > 40
    calls = _calls(*world)
    names = sorted(calls) if order == "forward" else sorted(calls, reverse=True)
    for _ in range(2):
        for name in names:
            value = getattr(nnprobe, name)
            assert not isinstance(value, types.ModuleType), f"nnprobe.{name} is a module"
            call, check = calls[name]
            assert check(call()), name


def test_a_plain_module_and_a_torch_device(world):
    import tiny_models

    _, data, _ = world
    result = nnprobe.evaluate(tiny_models.color_net_1000(), data, device=torch.device("cpu"), workers=0, **PLAIN)
    assert (result.correct_top1, result.total) == (3, 4) and result.model.source == "module"


def test_labelled_images_and_folder_give_the_same_counts(world):
    _, data, _ = world
    classifier = nnprobe.load_classifier(MODEL, **PLAIN)
    from_images = nnprobe.evaluate(classifier, nnprobe.find_images(data, classifier), workers=0)
    from_folder = nnprobe.evaluate(classifier, data, workers=0)
    assert (from_images.correct_top1, from_images.correct_top5, from_images.total) == \
        (from_folder.correct_top1, from_folder.correct_top5, from_folder.total) == (3, 3, 4)


@pytest.mark.parametrize("call, fragment", [
    (lambda d: nnprobe.evaluate(object(), d), "spec string, a Classifier or an nn.Module"),
    (lambda d: nnprobe.evaluate(MODEL, d, workers=-1, **PLAIN), "workers"),
    (lambda d: nnprobe.diagnose(ROOT / "samples" / "runs" / "healthy", model=MODEL), "go together"),
    (lambda d: nnprobe.evaluate(MODEL, d, device="tpu", workers=0, **PLAIN), "--device 'tpu'"),
])
def test_api_mistakes_are_nnprobe_errors(call, fragment, world):
    with pytest.raises(nnprobe.NnprobeError, match=re.escape(fragment)):
        call(world[1])


def _examples() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```(python|text)\n(.*?)```", text, flags=re.S)
    pairs, code = [], None
    for kind, body in blocks:
        if kind == "python":
            code = body
        else:
            pairs.append((code, body))
            code = None
    return pairs


def test_docs_api_examples_print_what_the_page_shows(tmp_path, monkeypatch):
    pairs = _examples()
    assert len(pairs) == 9
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code, expected in pairs:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "docs/api.md", "exec"), namespace)  # noqa: S102 — our own documentation
        assert out.getvalue() == expected, code


def test_no_submodule_shadows_a_public_name():
    """`import nnprobe.X` sets the attribute `nnprobe.X` to the module: a module named like a verb
    (`corruptions`, `evaluate`) would replace the function for everyone once anything imported it."""
    import pkgutil

    submodules = {info.name for info in pkgutil.iter_modules(nnprobe.__path__)}
    assert submodules, "no submodules found: the walk is broken"
    assert {"api", "imagenet_c", "evaluation"} <= submodules
    assert submodules & set(nnprobe.__all__) == set()
