"""The FMN reference for the tests: a line-by-line port of adversarial-library's `fmn`
(adv_lib/attacks/fast_minimum_norm.py, "Adapted from maurapintor/Fast-Minimum-Norm-FMN-Attack", BSD-3),
kept as it is written there (in-place updates, `difference_of_logits`, the projections of
adv_lib/utils/projections.py) without the warm-start branch, except the L2 projection, which follows the
authors' own code (pralab/Fast-Minimum-Norm-FMN-Attack src/attacks/fmn.py: clip the norm). Not nnprobe code: adv-lib is not on PyPI as
a wheel that builds offline, so its algorithm is carried here to compare with, per sample."""
from __future__ import annotations

import math

import torch
from torch.autograd import grad


def _difference_of_logits(logits, labels, labels_infhot):
    class_logits = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
    other_logits = (logits - labels_infhot).amax(dim=1)
    return class_logits - other_logits


def _l0_projection_(d, e):
    d = d.flatten(1)
    d_abs = d.abs()
    thresholds = d_abs.topk(k=e.long().max(), dim=1).values.gather(1, (e.long().unsqueeze(1) - 1).clamp_(min=0))
    d[d_abs < thresholds] = 0
    return d


def _simplex_projection(x, e):
    u = x.sort(dim=1, descending=True)[0]
    e = e.unsqueeze(1)
    indices = torch.arange(x.size(1), device=x.device)
    cumsum = torch.cumsum(u, dim=1).sub_(e).div_(indices + 1)
    K = (cumsum < u).long().mul_(indices).amax(dim=1, keepdim=True)
    tau = cumsum.gather(1, K)
    return x.sub_(tau).clamp_(min=0)


def _l1_projection_(d, e):
    x = d.flatten(1)
    to_project = x.norm(p=1, dim=1) > e
    if to_project.any():
        x_to = x[to_project]
        x[to_project] = _simplex_projection(x_to.abs(), e[to_project]).copysign_(x_to)
    return x


def _l2_projection_(d, e):
    d = d.flatten(1)
    l2 = d.norm(p=2, dim=1, keepdim=True).clamp_(min=1e-12)
    # the authors' code clips the norm (foolbox's clip_lp_norms); adv-lib's `d.mul_(e / l2).clamp_(max=1)`
    # rescales every delta onto the sphere, so here the authors' projection is kept
    d.mul_((e.unsqueeze(1) / l2).clamp(max=1))
    return d


def _linf_projection_(d, e):
    d, e = d.flatten(1), e.unsqueeze(1)
    return torch.clamp(d, min=-e, max=e, out=d)


def fmn(model, inputs, labels, norm, targeted=False, steps=10, a_init=1.0, a_final=None, g_init=0.05,
        g_final=0.001):
    dual, projection = {0: (None, _l0_projection_), 1: (float("inf"), _l1_projection_),
                        2: (2, _l2_projection_), float("inf"): (1, _linf_projection_)}[norm]
    batch_size = len(inputs)
    batch_view = lambda t: t.view(batch_size, *[1] * (inputs.ndim - 1))  # noqa: E731
    a_final = a_init / 100 if a_final is None else a_final
    multiplier = 1 if targeted else -1
    d = torch.zeros_like(inputs)
    d.requires_grad_(True)
    e = torch.ones(batch_size) if norm == 0 else torch.full((batch_size,), float("inf"))
    worst_norm = torch.maximum(inputs, 1 - inputs).flatten(1).norm(p=norm, dim=1)
    best_norm = worst_norm.clone()
    best_adv = inputs.clone()
    adv_found = torch.zeros(batch_size, dtype=torch.bool)
    for i in range(steps):
        cosine = (1 + math.cos(math.pi * i / steps)) / 2
        a = a_final + (a_init - a_final) * cosine
        g = g_final + (g_init - g_final) * cosine
        d_norm = d.data.flatten(1).norm(p=norm, dim=1)
        adv_inputs = inputs + d
        logits = model(adv_inputs)
        pred_labels = logits.argmax(dim=1)
        if i == 0:
            labels_infhot = torch.zeros_like(logits).scatter_(1, labels.unsqueeze(1), float("inf"))
        loss = multiplier * _difference_of_logits(logits, labels, labels_infhot)
        d_grad = grad(loss.sum(), d, only_inputs=True)[0]
        is_adv = (pred_labels == labels) if targeted else (pred_labels != labels)
        is_both = is_adv & (d_norm < best_norm)
        adv_found.logical_or_(is_adv)
        best_norm = torch.where(is_both, d_norm, best_norm)
        best_adv = torch.where(batch_view(is_both), adv_inputs.detach(), best_adv)
        if norm == 0:
            e = torch.where(is_adv, torch.minimum(torch.minimum(e - 1, (e * (1 - g)).floor_()), best_norm),
                            torch.maximum(e + 1, (e * (1 + g)).floor_()))
            e.clamp_(min=0)
        else:
            distance_to_boundary = loss.detach().abs_().div_(d_grad.flatten(1).norm(p=dual, dim=1).clamp_(min=1e-12))
            e = torch.where(is_adv, torch.minimum(e * (1 - g), best_norm),
                            torch.where(adv_found, e * (1 + g), d_norm + distance_to_boundary))
        e = torch.minimum(e, worst_norm)
        grad_l2_norms = d_grad.flatten(1).norm(p=2, dim=1).clamp_(min=1e-12)
        d.data.addcdiv_(d_grad, batch_view(grad_l2_norms), value=a)
        projection(d.data, e)
        d.data.add_(inputs).clamp_(min=0, max=1).sub_(inputs)
    return best_adv
