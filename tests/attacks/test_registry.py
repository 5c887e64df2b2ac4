"""The attack and norm registries: complete on import, parametrized over every entry, and open to a new
norm without an edit to the base class (a test-only L1 norm and attack prove it)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnprobe.attacks import NORMS, REGISTRY, Attack, Norm, attack_ids, base, build, get_attack, register, register_norm
from nnprobe.attacks.base import SampleRandom
from nnprobe.attacks.budget import budgets_for
from nnprobe.attacks.norms import Linf, per_sample

BUILTIN = ["apgd-ce", "apgd-ce-l2", "apgd-dlr", "apgd-dlr-l2", "apgd-t", "apgd-t-l2", "apgd-t-malt", "apgd-t-malt-l2",
           "autoattack", "autoattack-l2",
           "autoattack-plus", "autoattack-plus-l2", "autoattack-rand", "autoattack-rand-l2", "bim", "fab", "fab-l2",
           "fab-t", "fab-t-l2", "fast", "fast-l2", "fgsm", "mifgsm", "pgd", "pgd-l2", "square", "square-l2"]
QUERIES = {"square": {"steps": 100}, "square-l2": {"steps": 100},
           **{a: {"steps": 5, "queries": 100} for a in BUILTIN if a.startswith(("autoattack", "fast"))}}  # Square: 5000 by default
QUERIES.update(dict.fromkeys([a for a in BUILTIN if a.startswith(("apgd", "fab"))], {"steps": 10}))  # APGD, FAB: 100
EPS = {"linf": 8 / 255, "l2": 0.5, "l1-test": 4.0}  # a budget per norm that moves the tiny model
MODES = {"last iterate": {}, "first success": {"first_success": True},
         "early stop": {"first_success": True, "early_stop": True}}


class L1(Norm):
    """Test-only: an L1 ball with a rescaling projection and single-coordinate steepest-ascent steps."""

    id = "l1-test"
    symbol = "L1"

    @staticmethod
    def random_delta(x, eps, random):
        delta = 2 * random.uniform(x.shape, x.dtype) - 1
        radius = random.uniform((x.shape[0],), x.dtype)
        return delta * per_sample(radius * eps / L1.distance(delta).clamp_min(1e-12), x)

    @staticmethod
    def step(grad, size):
        flat = grad.flatten(1)
        top = flat.abs().argmax(dim=1, keepdim=True)
        onehot = torch.zeros_like(flat).scatter_(1, top, flat.gather(1, top).sign())
        return size * onehot.view_as(grad)

    @staticmethod
    def project(delta, eps):
        norms = L1.distance(delta)
        return delta * per_sample(torch.where(norms > eps, eps / norms.clamp_min(1e-12), torch.ones_like(norms)),
                                  delta)

    @staticmethod
    def distance(delta):
        return delta.flatten(1).abs().sum(dim=1)


NORM_CASES = [*NORMS.values(), L1]


def inside(distance: torch.Tensor, eps: float) -> bool:
    return bool((distance <= eps * (1 + 1e-6) + 1e-7).all())


@pytest.fixture
def l1_attack():
    """An L1 PGD registered for one test, written without touching base.py; unregistered afterwards."""
    register_norm(L1)

    @register("pgd-l1-test")
    class PGDL1(Attack):
        ball = L1
        default_random_start = True
        supports_random_start = True

    try:
        yield PGDL1
    finally:
        REGISTRY.pop("pgd-l1-test")
        NORMS.pop(L1.id)


@pytest.mark.parametrize("module", ["nnprobe.attacks", "nnprobe.attacks.base", "nnprobe.attacks.norms"])
def test_registry_is_complete_on_a_fresh_import(module):
    code = (f"import json, {module}, nnprobe.attacks.base as b, nnprobe.attacks.norms as n; "
            "print(json.dumps([sorted(b.REGISTRY), sorted(n.NORMS)]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [BUILTIN, ["l2", "linf"]]


def test_base_imports_no_attack_and_switches_on_no_norm():
    tree = ast.parse(Path(base.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    attack_modules = {cls.__module__ for cls in REGISTRY.values()} | {"nnprobe.attacks"}
    assert len(attack_modules) == 10 and not imported & attack_modules
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    assert not strings & set(NORMS)


def test_duplicates_and_hand_set_norms_raise():
    with pytest.raises(ValueError, match="norm id 'linf' is already registered"):
        register_norm(type("Again", (Linf,), {}))
    with pytest.raises(TypeError, match="sets norm; set ball"):
        type("Stringly", (Attack,), {"norm": "l2"})
    with pytest.raises(ValueError, match="already registered by PGD"):
        register("pgd")(type("Again", (Attack,), {}))
    assert NORMS["linf"] is Linf and REGISTRY["pgd"].__name__ == "PGD" and attack_ids() == BUILTIN


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("attack_id", sorted(REGISTRY))
def test_attack_keeps_its_norms_budget_modes_and_seed(attack_id, mode, tiny, batch):
    x, y = batch[0][:16], batch[1][:16]
    eps = EPS[REGISTRY[attack_id].norm]
    ids = torch.arange(16) + 100
    tiny.train()
    tiny.net.head.eval()  # a mixed state must come back exactly
    before = [m.training for m in tiny.modules()]
    out = build(attack_id, eps, seed=5, **QUERIES.get(attack_id, {}))(tiny, x, y, sample_ids=ids, **MODES[mode])
    assert [m.training for m in tiny.modules()] == before
    distance = REGISTRY[attack_id].ball.distance(out.adversarial - x)
    assert inside(distance, eps) and distance.max() > 0
    assert out.adversarial.min() >= 0 and out.adversarial.max() <= 1
    again = build(attack_id, eps, seed=5, **QUERIES.get(attack_id, {}))(tiny, x, y, sample_ids=ids, **MODES[mode])
    assert torch.equal(out.adversarial, again.adversarial) and torch.equal(out.steps, again.steps)
    assert torch.equal(out.success, again.success)


@pytest.mark.parametrize("eps", [0.0, 0.05, 1.0, 1e4])
@pytest.mark.parametrize("norm", NORM_CASES, ids=lambda n: n.id)
def test_projection_lands_inside_and_is_idempotent(norm, eps):
    g = torch.Generator().manual_seed(0)
    delta = (torch.rand(6, 3, 8, 8, generator=g) * 2 - 1) * torch.tensor([0.0, 1e-3, 0.1, 1, 3, 10]).view(6, 1, 1, 1)
    projected = norm.project(delta, eps)
    assert inside(norm.distance(projected), eps)
    assert torch.allclose(norm.project(projected, eps), projected, rtol=1e-6, atol=1e-9)
    strictly_inside = projected * 0.5
    assert torch.equal(norm.project(strictly_inside, eps), strictly_inside)
    if eps == 1e4:  # every delta was already inside: nothing moved
        assert torch.equal(projected, delta)


@pytest.mark.parametrize("norm", NORM_CASES, ids=lambda n: n.id)
def test_random_start_is_inside_the_ball_and_seeded(norm):
    x = torch.full((5, 3, 8, 8), 0.5)
    eps = EPS[norm.id]
    delta = norm.random_delta(x, eps, SampleRandom(7, 5, None, "cpu"))
    distance = norm.distance(delta)
    assert delta.shape == x.shape and inside(distance, eps)
    assert (distance > 0).all() and len(set(distance.tolist())) == 5
    assert torch.equal(delta, norm.random_delta(x, eps, SampleRandom(7, 5, None, "cpu")))


@pytest.mark.parametrize("norm", NORM_CASES, ids=lambda n: n.id)
def test_a_step_moves_exactly_its_size(norm):
    grad = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    grad[0] = 0
    distance = norm.distance(norm.step(grad, 0.3))
    assert distance[0] == 0
    assert torch.allclose(distance[1:], torch.full((3,), 0.3), rtol=1e-5)
    assert (norm.step(grad, 0.3).flatten(1) * grad.flatten(1)).sum(1)[1:].gt(0).all()  # an ascent direction


def test_a_new_norm_needs_no_edit_to_the_base_class(l1_attack, tiny, batch):
    x, y = batch
    assert "pgd-l1-test" in attack_ids() and get_attack("pgd-l1-test") is l1_attack
    assert l1_attack.norm == "l1-test"
    assert budgets_for("3", "pgd-l1-test") == (3.0,)  # no L∞ cap of 1 for this norm
    attack = build("pgd-l1-test", 3.0, steps=5, seed=0)
    out = attack(tiny, x, y)
    distance = L1.distance(out.adversarial - x)
    assert inside(distance, 3.0) and distance.min() > 0
    assert out.adversarial.min() >= 0 and out.adversarial.max() <= 1
    with torch.no_grad():
        assert torch.equal(out.success, tiny(out.adversarial).argmax(1) != y)
