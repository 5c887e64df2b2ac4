"""torch.export archives (.pt2): every path by which torch.export.load (or the module it returns) runs code
from the file is refused before torch reads it, unless --trust-pickle; and programs exported with a
static batch size run at any batch size."""
from __future__ import annotations

import pytest
import torch
from pt2_helpers import KINDS, WithConstant, clean_archive, crafted, export_net

from nnprobe.errors import InputError, ModelLoadError, UnsafeCheckpointError
from nnprobe.models import load_classifier
from nnprobe.models.export_archive import _expr_ok, _guard_ok, _target_ok


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    assert not path.exists()
    return path


@pytest.mark.parametrize("kind", list(KINDS))
def test_crafted_archive_is_refused_and_runs_nothing(tmp_path, marker, kind):
    path = crafted(kind, tmp_path, marker)
    before = path.read_bytes()
    with pytest.raises(UnsafeCheckpointError, match="--trust-pickle") as info:
        load_classifier(str(path))
    assert str(path) in str(info.value) and str(info.value).count(". ") == 0  # one sentence
    assert not marker.exists()
    assert path.read_bytes() == before


@pytest.mark.parametrize("kind", [k for k, live in KINDS.items() if live])
def test_the_payloads_are_live_when_trusted(tmp_path, marker, kind):
    """The opt-in is the only difference: trusted, the same file runs its code (load, or one forward)."""
    path = crafted(kind, tmp_path, marker)
    try:
        classifier = load_classifier(str(path), trust_pickle=True)
        classifier(torch.rand(2, 3, 16, 16))
    except Exception:
        pass  # the payload replaced a tensor: loading may fail after it ran
    assert marker.exists()


@pytest.mark.parametrize("dynamic", [True, False])
def test_clean_archives_load_without_trust_and_match_the_network(tmp_path, dynamic):
    torch.manual_seed(0)
    net = WithConstant().eval()
    path = export_net(net, tmp_path / "net.pt2", batch=4, dynamic=dynamic)
    classifier = load_classifier(str(path), resize=16, crop=16, mean=(0, 0, 0), std=(1, 1, 1))
    assert classifier.num_classes == 3 and classifier.info.source == "export"
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x), net(x))


@pytest.mark.parametrize("text, ok", [
    ("Symbol('s31', positive=True, integer=True)", True),
    ("2*s0 + FloorDiv(s1, 4)", True),
    ("Max(1, s0)**2", True),
    ("__import__('os').system('x')", False),
    ("open('x','w')", False),
    ("s0.__class__", False),
    ("Symbol('s0) or (1', integer=True)", False),
    ("Symbol('s0', integer=open('x'))", False),
    ("9**9**9**9", False),
    ("(" * 5000 + "s0" + ")" * 5000, False),
    (123, False),
])
def test_shape_expression_grammar(text, ok):
    assert _expr_ok(text) is ok


@pytest.mark.parametrize("text, ok", [
    ("L['x'].size()[0] <= 1024", True),
    ("2 <= L['x'].size()[0] and L['x'].size()[1] == 3", True),
    ("L['x'].size()[0] % 8 == 0", True),
    ("L['x'].__class__", False),
    ("open('x', 'w') is None", False),
    ("L['a\" + str(1) + \"'].size()[0] == 1", False),
])
def test_guard_grammar(text, ok):
    assert _guard_ok(text) is ok


@pytest.mark.parametrize("target, ok", [
    ("torch.ops.aten.conv2d.default", True), ("torch.ops.aten._to_copy.default", True),
    ("torch.ops.higher_order.cond", True), ("_operator.getitem", True), ("torch.sym_int", True),
    ("torch.os.system", False), ("torch.ops.load_library", False), ("torch.ops.import_module.x", False),
    ("_operator.attrgetter", False), ("torch.ops.aten.__class__.x", False), ("builtins.eval", False),
])
def test_call_targets(target, ok):
    assert _target_ok(target) is ok


def test_truncated_archive_is_not_readable(tmp_path):
    path = clean_archive(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for trust in (False, True):
        with pytest.raises(ModelLoadError, match="not a readable torch.export program") as info:
            load_classifier(str(path), trust_pickle=trust)
        assert not isinstance(info.value, UnsafeCheckpointError)


def _per_chunk_reference(module, x, batch):
    """A plain loop: the program called on each chunk of `batch` rows, the last padded with its first row."""
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch):
            chunk = x[start:start + batch]
            rows = chunk.shape[0]
            padded = torch.cat([chunk] + [chunk[:1]] * (batch - rows))
            out.append(module(padded)[:rows])
    return torch.cat(out)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 17])
def test_static_batch_export_runs_at_any_batch_size(tmp_path, n):
    torch.manual_seed(0)
    net = WithConstant().eval()
    path = export_net(net, tmp_path / "static8.pt2", batch=8, dynamic=False)
    classifier = load_classifier(str(path), resize=16, crop=16, mean=(0, 0, 0), std=(1, 1, 1))
    assert classifier.net.static_batch == 8
    x = torch.rand(n, 3, 16, 16)
    with torch.no_grad():
        got = classifier(x)
    program = torch.export.load(str(path)).module()
    assert got.shape == (n, 3)
    assert torch.equal(got, _per_chunk_reference(program, x, 8))
    with torch.no_grad():
        torch.testing.assert_close(got, net(x))  # and the eager network agrees, row by row


def test_static_input_size_mismatch_is_one_sentence(tmp_path):
    path = export_net(WithConstant(), tmp_path / "static8.pt2", batch=8, dynamic=False)
    classifier = load_classifier(str(path))  # ImageNet default preprocessing: 224 pixels, not 16
    with pytest.raises(InputError, match=r"exported for inputs of 3x16x16 pixels, not 3x224x224; set --resize/--crop"):
        classifier(torch.rand(2, 3, 224, 224))


def test_cli_eval_static_batch_export_counts_equal_the_dynamic_export(tmp_path, invoke):
    """`nnprobe eval DATA --model static8.pt2` at batch sizes that are not 8 gives the dynamic export's counts."""
    import json

    from helpers import PLAIN_FLAGS, make_wnid_folders
    from tiny_models import color_net

    data = make_wnid_folders(tmp_path / "data", {5: 3, 400: 3}, wrong={400: 2})  # top-1 = 6/8
    net = color_net(1000)
    static = tmp_path / "static8.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(8, 3, 32, 32),)), str(static))
    dynamic = export_net(net, tmp_path / "dynamic.pt2", batch=2, size=32)
    counts = {}
    for path, batch in ((static, "3"), (static, "64"), (dynamic, "3")):
        proc = invoke("eval", str(data), "--model", str(path), *PLAIN_FLAGS, "--workers", "0", "--batch-size", batch,
                      "--format", "json")
        assert proc.returncode == 0, proc.stderr
        body = json.loads(proc.stdout)
        counts[(path.name, batch)] = (body["correct_top1"], body["correct_top5"], body["total"])
    assert set(counts.values()) == {(6, 6, 8)}, counts
