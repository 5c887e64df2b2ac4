"""The binarization test (Zimmermann et al. 2022, `nnprobe/attacks/binarization.py`): it flags the planted
defenses it is built for and no control, it can fail (a planted weak attack; a readout with no attackable
point is refused, never passed), its pieces agree with plain computations (the readout layer, the training
points, the binary logits, a hand-written PGD loop's verdicts), and its cost is what the model counts."""
from __future__ import annotations

import contextlib

import pytest
import torch

import planted
import tinymodels
from nnprobe.attacks import binarization, build
from nnprobe.attacks.base import SampleRandom
from nnprobe.attacks.robustness import robust
from nnprobe.errors import DataError
from test_cost import counting_classifier

EPS = 8 / 255
NONE = contextlib.nullcontext()


@pytest.fixture(scope="module")
def data():
    x, y = tinymodels.make_data(16, seed=21)
    return planted.on_grid(x), y


def _run(model, data, **options):
    return robust(model, [data], eps=(0.0, EPS), binarization_test=True, **{"attack": "pgd", **options})


def _finding(result, check):
    return next((f for f in result.findings if f.id == check), None)


@pytest.mark.parametrize("kind", sorted(planted.BINARIZATION))
def test_flags_the_planted_defenses_it_is_built_for(kind, data):
    torch.manual_seed(0)
    result = _run(planted.classifier(kind), data)
    finding = _finding(result, "binarization-test-fails")
    assert finding is not None, [f.id for f in result.findings]
    m = result.sanity["model"]
    assert m["binarization_asked"] == 16 and m["binarization_checked"] == 16 and m["binarization_failed"] == 16
    assert finding.evidence["follow_up"] == "square" and finding.evidence["sample_ids"] == list(range(10))
    # the adversarial exists and is easy to find by chance: random surface points are adversarial for some
    assert finding.evidence["random_point_adversarial"] > 0


@pytest.mark.parametrize("kind", planted.CONTROLS)
def test_passes_every_control(kind, data):
    result = _run(planted.classifier(kind), data)
    assert result.findings == ()
    m = result.sanity["model"]
    assert m["binarization_asked"] == m["binarization_checked"] == 16 and m["binarization_failed"] == 0


@pytest.mark.parametrize("kind,fails", [("plain", 0), ("noise-backward", 16), ("wrong-sign-ste", 16)])
def test_l2_budgets(kind, fails, data):
    """The L2 ball: inner points uniform within 0.95·eps, the boundary point a random direction at eps."""
    result = robust(planted.classifier(kind), [data], attack="pgd-l2", eps=(0.0, 0.5), binarization_test=True)
    m = result.sanity["model"]
    assert m["binarization_checked"] == 16 and m["binarization_failed"] == fails
    assert (_finding(result, "binarization-test-fails") is not None) == bool(fails)


def test_off_by_default_and_its_counts_stay_zero(data):
    result = robust(planted.classifier("noise-backward"), [data], attack="pgd", eps=(0.0, EPS))
    assert _finding(result, "binarization-test-fails") is None
    assert all(result.sanity["model"][name] == 0 for name in binarization.COUNTS)
    assert result.settings.binarization_inner_points is None


def test_a_planted_weak_attack_fails_it_on_an_honest_model(data):
    """Two PGD steps of 0.75/255 without a random start cannot reach the planted adversarial on every sample
    (the readout's boundary lies 0.9999 of the way to the boundary point); ten steps of 2/255 reach it on all
    (the control above)."""
    result = _run(planted.classifier("plain"), data, steps=2, step_size=0.75 / 255, random_start=False)
    finding = _finding(result, "binarization-test-fails")
    assert finding is not None and 0 < finding.evidence["failed"] < 16


def test_a_readout_with_no_attackable_point_is_refused_not_passed(data, monkeypatch):
    """Break the construction: a readout whose boundary point is not adversarial (bias pushed far below).
    The check in pixel space refuses it, so no sample counts as tested (and none as passed)."""
    fit = binarization.fit_readout

    def broken(inner, boundary):
        w, b = fit(inner, boundary)
        return w, b - 1e3

    monkeypatch.setattr(binarization, "fit_readout", broken)
    result = _run(planted.classifier("plain"), data)
    m = result.sanity["model"]
    assert m["binarization_checked"] == 0 and m["binarization_failed"] == 0
    finding = _finding(result, "binarization-test-not-set-up")
    assert finding is not None and finding.evidence["asked"] == 16


def test_a_model_without_a_final_linear_layer_is_not_set_up():
    from test_planted import _wave

    x = torch.full((4, 3, 4, 4), 0.5) + torch.tensor([0.0, 0.002, 0.004, 0.006]).view(4, 1, 1, 1)
    result = robust(_wave(), [(x, torch.zeros(4, dtype=torch.long))], attack="pgd", eps=(0.0, 0.1),
                    binarization_test=True)
    assert binarization.readout_layer(_wave(), x, NONE) is None
    assert _finding(result, "binarization-test-not-set-up").evidence["checked"] == 0


def test_readout_layer_training_points_and_binary_logits_against_plain_computations(data):
    x = data[0]
    model = planted.classifier("plain")
    layer = binarization.readout_layer(model, x, NONE)
    assert layer is model.net.net.head
    for ball_attack in ("pgd", "pgd-l2"):
        eps = EPS if ball_attack == "pgd" else 0.5
        ball = build(ball_attack, eps).ball
        inner, boundary = binarization.training_points(x[3], ball, eps, SampleRandom(5, 1, torch.tensor([3]), "cpu"))
        assert inner.shape[0] == binarization.INNER + 1 and torch.equal(inner[0], x[3])
        distances = ball.distance(inner - x[3])
        assert (distances <= binarization.ETA * eps + 1e-6).all() and distances[1:].min() > 0
        assert 0 <= inner.min() and inner.max() <= 1 and 0 <= boundary.min() and boundary.max() <= 1
        unclipped = ((x[3] > eps) & (x[3] < 1 - eps)) if ball_attack == "pgd" else None
        if unclipped is not None:  # a corner: every pixel that the cube does not clip moved by exactly eps
            assert torch.allclose((boundary[0] - x[3]).abs()[unclipped], torch.tensor(eps), atol=1e-6)
    # the features are the head's input, computed here without hooks
    mean, std = torch.tensor(tinymodels.PRE.mean).view(1, 3, 1, 1), torch.tensor(tinymodels.PRE.std).view(1, 3, 1, 1)
    with torch.no_grad():
        plain = model.net.net.features((x - mean) / std)
    assert torch.allclose(binarization.features(model, layer, x, NONE), plain, atol=1e-6)
    w, b = torch.randn(plain.shape[1]), torch.tensor(0.3)
    with binarization.binarized(layer, w, b, tinymodels.CLASSES), torch.no_grad():
        logits = model(x)
    z = plain @ w + b
    assert torch.allclose(logits[:, 0], -z, atol=1e-5) and torch.allclose(logits[:, 1], z, atol=1e-5)
    assert (logits[:, 2:] < logits[:, :2].amax(1, keepdim=True)).all()
    assert torch.equal(logits.argmax(1), (z > 0).long())


def test_the_fitted_readout_separates_and_is_scaled_to_a_range_of_one(data):
    model = planted.classifier("plain")
    layer = binarization.readout_layer(model, data[0], NONE)
    inner, boundary = binarization.training_points(data[0][0], build("pgd", EPS).ball, EPS,
                                                   SampleRandom(0, 1, torch.tensor([0]), "cpu"))
    assert inner.shape[0] == binarization.INNER + 1 == 1000  # the reference's 999 and the clean image
    f = binarization.features(model, layer, torch.cat([inner, boundary]), NONE).double()
    w, b = binarization.fit_readout(f[:-1], f[-1:])
    z = f @ w + b
    assert (z[:-1] < 0).all() and z[-1] > 0
    assert 2 * z.abs().max() == pytest.approx(1.0, abs=1e-12)  # logits (-z, z) span a range of 1
    # the reference's decision_boundary_closeness: the boundary moved 0.9999 of the way to the boundary point
    moved = f @ w + binarization.closer(b, float(z[-1]))
    assert (moved[:-1] < z[:-1]).all() and float(moved[-1]) == pytest.approx(1e-4 * float(z[-1]), rel=1e-6)
    # one point inside the convex hull of the others cannot be separated: refused
    assert binarization.fit_readout(f[:-1], f[:-1].mean(0, keepdim=True)) is None


def test_verdicts_equal_a_hand_written_pgd_loop(data):
    """PGD without a random start against the binary model, written here on the features: the same samples
    are found adversarial as the test says passed (the same readouts: same seed, same sample ids)."""
    x = data[0][:8]
    model = planted.classifier("plain")
    attack = build("pgd", EPS, steps=2, step_size=0.75 / 255, random_start=False)  # too short for some
    flags = binarization.check(attack, model, x, torch.arange(8), 0, NONE)
    layer = binarization.readout_layer(model, x, NONE)
    mean, std = torch.tensor(tinymodels.PRE.mean).view(1, 3, 1, 1), torch.tensor(tinymodels.PRE.std).view(1, 3, 1, 1)
    found = []
    for i in range(8):
        random = SampleRandom((0 + binarization.SEED_OFFSET) % 2**31, 1, torch.tensor([i]), "cpu")
        inner, boundary = binarization.training_points(x[i], attack.ball, EPS, random)
        f = binarization.features(model, layer, torch.cat([inner, boundary]), NONE)
        w, b = binarization.fit_readout(f[:-1], f[-1:])
        with torch.no_grad():  # the boundary point's score in pixel space, as the test takes it
            far = float(model.net.net.features((torch.stack([x[i], boundary[0]]) - mean) / std)[1].double() @ w + b)
        b = b - 0.9999 * far
        adv, hit = x[i:i + 1].clone(), False
        for _ in range(2):
            adv.requires_grad_(True)
            z = model.net.net.features((adv - mean) / std).double() @ w + b
            hit |= bool(z.item() > 0)
            grad, = torch.autograd.grad(torch.nn.functional.cross_entropy(
                torch.stack([-z, z, -z.abs() - 1, -z.abs() - 1], 1), torch.zeros(1, dtype=torch.long)), adv)
            adv = (x[i:i + 1] + (adv.detach() + 0.75 / 255 * grad.sign() - x[i:i + 1]).clamp(-EPS, EPS)).clamp(0, 1)
        with torch.no_grad():
            hit |= bool((model.net.net.features((adv - mean) / std).double() @ w + b).item() > 0)
        found.append(hit)
    assert flags["binarization_checked"].all()
    assert (~flags["binarization_failed"]).tolist() == found and 0 < sum(found) < 8


@pytest.mark.parametrize("inner", [binarization.INNER, 31])
def test_cost_is_what_the_model_counts(data, inner):
    model = counting_classifier()
    flags = binarization.check(build("pgd", EPS), model, data[0][:4], torch.arange(4), 0, NONE, inner=inner)
    counted = model.net.forwards + 2 * model.net.backwards
    # all but the one image that finds the layer (per process, so that merged slices add up to one process)
    assert int(flags["binarization_cost"].sum()) == counted - 1 > 4 * (inner + 1)
    # per sample: the clean image, the inner points and the boundary point, 2 to check the readout, the random
    # points, 1 to judge the attack's answer, and the attack's own passes (PGD-10 with early stop: 4 to 33)
    per_sample = (counted - 1) / 4 - (inner + 2 + 2 + binarization.RANDOM + 1)
    assert 4 <= per_sample <= 33


def test_cli_flag_json_table_and_the_corruption_sweep_refusal(tmp_path, invoke):
    import json

    tinymodels.save_class_folders(tmp_path / "data", 8, seed=3)
    args = ["robust", str(tmp_path / "data"), "--model", f"{planted.__file__}:thermometer_classifier", "--eps",
            "0,8/255", "--workers", "0", "--device", "cpu", "--binarization-test"]
    proc = invoke(*args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert "binarization-test-fails" in {f["id"] for f in body["findings"]}
    assert body["sanity"]["model"]["binarization_failed"] == body["sanity"]["model"]["binarization_asked"] == 8
    assert body["settings"]["binarization_inner_points"] == binarization.INNER == 999  # the reference's
    table = invoke(*args)
    assert "the attack found the planted adversarial for 0 of 8 samples" in table.stdout
    assert "binarization test with 999 inner points per sample" in " ".join(table.stdout.split())
    fewer = json.loads(invoke(*args, "--binarization-inner-points", "31", "--format", "json").stdout)
    assert fewer["settings"]["binarization_inner_points"] == 31
    # 968 fewer forwards per sample, everything else the same (thermometer: no gradient, the same attack passes)
    assert body["sanity"]["model"]["binarization_cost"] - fewer["sanity"]["model"]["binarization_cost"] == 8 * 968
    alone = invoke(*args[:-1], "--binarization-inner-points", "31")
    assert alone.returncode == 2 and "add --binarization-test" in alone.stderr and "Traceback" not in alone.stderr
    for bad in ("0", "10000", "many"):
        refused = invoke(*args, "--binarization-inner-points", bad)
        assert refused.returncode == 2 and "--binarization-inner-points" in refused.stderr, bad
    refused = invoke(*args, "--corruptions", "all")
    assert refused.returncode == 2 and "--binarization-test" in refused.stderr and "Traceback" not in refused.stderr


def test_around_the_default_model_on_a_photo():
    """EfficientNet-Lite0 (1280 features, 1000 classes) on one bundled photo at 1/255: the wrong-sign
    straight-through quantiser in front of it fails the test with 3-step PGD, the bare model passes."""
    import dataclasses

    from test_planted import AroundDefault, default_photos

    from nnprobe.models import load_classifier
    from nnprobe.models.classifier import Classifier

    base = load_classifier()
    x = default_photos(base)[:1]
    identity = dataclasses.replace(base.preprocessing, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    defended = Classifier(AroundDefault(base, "wrong-sign-ste"), dataclasses.replace(base.info, preprocessing=identity),
                          base.class_names).eval()
    # no random start: the verdicts follow the gradient alone (at 1/255 random corners of the ball are already
    # adversarial for the binary problems of both photos tried, so a random start could pass by chance)
    attack = build("pgd", 1 / 255, steps=3, step_size=0.25 / 255, random_start=False)
    for model, failed in ((defended, 1), (base, 0)):  # 63 inner points: 999 take ~80 s per photo here
        flags = binarization.check(attack, model, x, torch.arange(1), 0, NONE, inner=63)
        assert int(flags["binarization_checked"].sum()) == 1 and int(flags["binarization_failed"].sum()) == failed
    assert binarization.readout_layer(base, x, NONE).in_features == 1280


def test_slices_merged_equal_one_process(tmp_path):
    """--shard slices each test their own first samples (readouts drawn per sample id): merged, the counts,
    the cost and the finding equal one process's."""
    from nnprobe import api

    tinymodels.save_class_folders(tmp_path / "data", 12, seed=3)
    spec = f"{planted.__file__}:wrong_sign_ste_classifier"
    options = dict(eps="0,8/255", steps=3, seed=5, binarization_test=True, binarization_inner_points=31, workers=0,
                   device="cpu")
    one = api.robust(spec, str(tmp_path / "data"), **options)
    parts = [api.robust(spec, str(tmp_path / "data"), shard=f"{k}/2", **options).to_dict() for k in (1, 2)]
    merged = api.merge(parts)
    names = binarization.COUNTS
    assert {k: merged.sanity["model"][k] for k in names} == {k: one.sanity["model"][k] for k in names}
    assert one.sanity["model"]["binarization_asked"] == 12 and one.sanity["model"]["binarization_failed"] > 0
    assert [f for f in merged.findings if f.id.startswith("binarization")] == \
           [f for f in one.findings if f.id.startswith("binarization")]
    assert merged.settings.binarization_inner_points == one.settings.binarization_inner_points == 31
    other = api.robust(spec, str(tmp_path / "data"), shard="2/2", **dict(options, binarization_inner_points=15))
    with pytest.raises(DataError, match="settings"):  # slices of two tests are not one job
        api.merge([parts[0], other.to_dict()])
