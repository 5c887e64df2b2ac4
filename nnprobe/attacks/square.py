"""Square attack (Andriushchenko et al. 2020): score-based random search, L∞ (`square`) and L2 (`square-l2`).

No gradients at all: every step asks the model for its logits on one candidate per sample (a random
square window moved to the ball's surface) and keeps the candidate when the margin loss drops. A model
that masks its gradients (rounding, thresholds, an argmax inside) is attacked as well as a smooth one,
which is why AutoAttack runs it. The search follows the reference (fra31/auto-attack, ported by
torchattacks' `Square`): margin loss, p_init 0.8 with the `p_selection` schedule rescaled to the query
budget, vertical-stripe start (L∞), the eta-square start and two-window update (L2).

Where this differs from the reference, it is for per-sample independence and the base class's contract:
- random numbers come from a generator per sample seeded by (seed, sample id) (default id: the position
  in the batch); the reference shares each query's window position (L∞: and its signs; L2: the eta
  square's transpose) across the batch. A sample's result therefore never depends on its batch, its
  rank or which samples were dropped. Fed the same numbers, one image takes the reference's path bit
  for bit (tested against torchattacks), so the arithmetic below copies the reference's rounding;
- a sample counts as fooled when the argmax leaves the label (reaches the target): the base class's
  criterion; the margin only ranks candidates;
- with `first_success=False` ("last iterate") the search goes on after success, still lowering the
  margin, and returns the most confident image found (what `fool` wants); the reference stops at the
  first success, as `first_success=True` does. Samples the model already gets wrong come back unchanged.

`steps` is the reference's `n_queries` (default 5000, AutoAttack's standard): queries after the start.
`gradient_passes` counts forward queries here (one per sample per query, including the clean image and
the start): the attack runs no backward pass.
"""
from __future__ import annotations

import functools
import math

import torch

from nnprobe.attacks.base import Attack, AttackOutput, SampleRandom, register
from nnprobe.attacks.norms import L2, Linf
from nnprobe.errors import UsageError

# p_selection: (bound on the iteration rescaled to 10,000 queries, divisor of p_init) as in the reference
_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256))


def p_selection(p_init: float, step: int, n_queries: int) -> float:
    """The fraction of pixels a square covers at `step`: halved along the reference's schedule."""
    it = int(step / n_queries * 10000)
    for bound, divisor in _SCHEDULE:
        if it <= bound:
            return p_init / divisor
    return p_init / 512


def margin(logits: torch.Tensor, goal: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The reference's margin loss, lowered by the search: label logit minus the best other one
    (targeted: best other minus the target's)."""
    own = logits.gather(1, goal[:, None]).squeeze(1)
    other = logits.scatter(1, goal[:, None], float("-inf")).amax(dim=1)
    return other - own if targeted else own - other


def _eta_rectangles(x: int, y: int) -> torch.Tensor:
    delta = torch.zeros(x, y)
    x_c, y_c = x // 2 + 1, y // 2 + 1
    c0, c1 = x_c - 1, y_c - 1
    for counter in range(max(x_c, y_c)):
        rows, cols = slice(max(c0, 0), min(c0 + 2 * counter + 1, x)), slice(max(c1, 0), min(c1 + 2 * counter + 1, y))
        delta[rows, cols] += 1.0 / (counter + 1) ** 2
        c0, c1 = c0 - 1, c1 - 1
    return delta / delta.square().sum().sqrt()


@functools.lru_cache(maxsize=64)
def eta(s: int) -> torch.Tensor:
    """The reference's L2 square of side s: nested rectangles, + on the top half and − on the bottom, unit norm."""
    delta = torch.zeros(s, s)
    delta[:s // 2] = _eta_rectangles(s // 2, s)
    delta[s // 2:] = -_eta_rectangles(s - s // 2, s)
    return delta / delta.square().sum().sqrt()


def _signs(u: torch.Tensor) -> torch.Tensor:
    """±1 from U[0, 1) (the reference's sign(2u − 1), without its measure-zero 0)."""
    return torch.where(u < 0.5, -1.0, 1.0)


def _offsets(u: torch.Tensor, size: int, s: int) -> torch.Tensor:
    """A window's start per sample, uniform in [0, size − s) as the reference's `random_int`."""
    return (u * (size - s)).long()


@functools.lru_cache(maxsize=32)
def _arange(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device)


def _window_mask(top: torch.Tensor, left: torch.Tensor, s: int, h: int, w: int) -> torch.Tensor:
    """(m, 1, h, w) bool: each sample's s×s window at (top, left)."""
    rows, cols = _arange(h, top.device), _arange(w, top.device)
    in_h = (rows >= top[:, None]) & (rows < top[:, None] + s)
    in_w = (cols >= left[:, None]) & (cols < left[:, None] + s)
    return (in_h[:, :, None] & in_w[:, None, :])[:, None]


def _window_index(top: torch.Tensor, left: torch.Tensor, s: int, c: int) -> tuple[torch.Tensor, ...]:
    """Advanced indices selecting each sample's s×s window on every channel: shape (m, c, s, s)."""
    m = top.shape[0]
    span = torch.arange(s, device=top.device)
    return (torch.arange(m, device=top.device).view(m, 1, 1, 1), torch.arange(c, device=top.device).view(1, c, 1, 1),
            (top[:, None] + span).view(m, 1, s, 1), (left[:, None] + span).view(m, 1, 1, s))


def _l2(delta: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm, summed as the reference does (its rounding matters: see `SquareL2.candidate`)."""
    return (delta ** 2).flatten(1).sum(dim=1).sqrt().view(-1, *([1] * (delta.dim() - 1)))


class _Streams:
    """Per-sample U[0, 1) numbers, `width` per query, drawn in blocks of CHUNK queries from each sample's
    own generator (on the CPU, then moved): a sample's numbers depend on (seed, id) only, never on its
    batch or on which other samples are still being queried."""

    CHUNK = 64

    def __init__(self, random: SampleRandom, width: int) -> None:
        self.generators = random.generators
        self.device = random.device
        self.buffer = torch.empty(len(self.generators), self.CHUNK, width)

    def at(self, step: int, active: torch.Tensor) -> torch.Tensor:
        """(len(active), width): the numbers of query `step` for the samples `active` (a CPU index);
        the samples queried at `step` were all queried at step − 1, so blocks refill together."""
        if step % self.CHUNK == 0:
            for i in active.tolist():
                self.buffer[i] = torch.rand(self.buffer.shape[1:], generator=self.generators[i])
        return self.buffer[active, step % self.CHUNK].to(self.device)


class _Search:
    """Per-sample search state: the best image so far, its margin and logits, and the first fooling one."""

    def __init__(self, x: torch.Tensor, goal: torch.Tensor, targeted: bool, logits: torch.Tensor) -> None:
        self.goal, self.targeted = goal, targeted
        self.best, self.logits = x.clone(), logits.clone()
        self.margin = margin(logits, goal, targeted)
        self.done = Attack.fooled(logits, goal, targeted)  # fooled by some image seen so far
        self.clean_fooled = self.done.clone()  # these never move (as the reference)
        self.kept, self.kept_logits = self.best.clone(), self.logits.clone()
        self.ran = torch.zeros_like(goal)  # queries after the start, per sample (set when the search ends)
        self.kept_steps = torch.zeros_like(goal)

    def offer(self, idx: torch.Tensor, candidate: torch.Tensor, logits: torch.Tensor, step: int) -> bool:
        """Keep each sample's candidate of query `step` (0: the start) when its margin drops or it fools
        for the first time; the start is always kept (the reference searches from it even when the
        clean image scored better). Returns whether some sample was fooled for the first time."""
        goal = self.goal[idx]
        new_margin = margin(logits, goal, self.targeted)
        first = Attack.fooled(logits, goal, self.targeted) & ~self.done[idx]
        better = (new_margin < self.margin[idx]) | first
        if step == 0:
            better = torch.ones_like(better)
        elif not bool(better.any()):  # most queries late in the search: nothing to write
            return False
        take = idx[better]
        self.best[take], self.logits[take], self.margin[take] = candidate[better], logits[better], new_margin[better]
        if bool(first.any()):
            newly = idx[first]
            self.done[newly] = True
            self.kept[newly], self.kept_logits[newly] = candidate[first], logits[first]
            self.kept_steps[newly] = step
            return True
        return False

    def output(self, first_success: bool, passes: int) -> AttackOutput:
        if first_success:
            adv = torch.where(self.done.view(-1, 1, 1, 1), self.kept, self.best)
            logits = torch.where(self.done[:, None], self.kept_logits, self.logits)
            steps = torch.where(self.done, self.kept_steps, self.ran)
        else:
            adv, logits, steps = self.best, self.logits, self.ran
        return AttackOutput(adversarial=adv, logits=logits, success=Attack.fooled(logits, self.goal, self.targeted),
                            steps=steps, gradient_passes=passes)


@register("square")
class Square(Attack):
    """L∞ Square attack: stripes of ±eps to start, then squares of ±eps per channel moved at random."""

    ball = Linf
    default_steps = 5000
    default_random_start = True
    supports_random_start = True
    p_init = 0.8

    def __init__(self, eps: float, *, steps: int | None = None, step_size: float | None = None,
                 random_start: bool | None = None, seed: int | None = None, p_init: float = 0.8) -> None:
        if step_size is not None:
            raise UsageError(f"{self.id} takes no --step-size: its square sizes follow p_init's schedule.")
        if random_start is False:
            raise UsageError(f"{self.id} always starts from a random point of the ball; drop --no-random-start.")
        if not 0 < p_init <= 1:
            raise UsageError(f"p_init must be in (0, 1], got {p_init!r}.")
        super().__init__(eps, steps=steps, random_start=random_start, seed=seed)
        self.p_init = float(p_init)

    def default_step_size(self) -> float:
        """No step: reported as 0 (the squares' sizes follow p_init's schedule)."""
        return 0.0

    def draws(self, channels: int) -> int:
        """U[0, 1) numbers per sample per query: the window's position and a sign per channel."""
        return 2 + channels

    def side(self, step: int, c: int, h: int, w: int) -> int:
        p = p_selection(self.p_init, step, self.steps)
        return min(max(int(round(math.sqrt(p * h * w))), 1), h, w)

    def start(self, x: torch.Tensor, random: SampleRandom) -> torch.Tensor:
        """Vertical stripes: ±eps per channel and column."""
        n, c, _, w = x.shape
        return x + self.eps * _signs(random.uniform((n, c, 1, w), x.dtype))

    def inside(self, x: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        """Onto the ball and into [0, 1] with the reference's own arithmetic (clip to x ± eps), so that
        the search takes the reference's path bit for bit (tested)."""
        return torch.min(torch.max(adv, x - self.eps), x + self.eps).clamp(0, 1)

    def candidate(self, x: torch.Tensor, best: torch.Tensor, u: torch.Tensor, step: int) -> torch.Tensor:
        """The best image with one s×s window moved by 2·eps (one sign per channel); put inside by the caller."""
        m, c, h, w = x.shape
        s = self.side(step, c, h, w)
        window = _window_mask(_offsets(u[:, 0], h, s), _offsets(u[:, 1], w, s), s, h, w)
        return best + window * (2 * self.eps * _signs(u[:, 2:2 + c]).view(m, c, 1, 1).to(x.dtype))

    def _run(self, forward, x, goal, targeted, first_success, early_stop, autocast, gradient,
             sample_ids) -> AttackOutput:
        def query(images: torch.Tensor) -> torch.Tensor:
            with autocast:
                return forward(images).float()

        n = x.shape[0]
        with torch.no_grad():
            search = _Search(x, goal, targeted, query(x))
            passes = n
            if self.eps > 0:
                ids = sample_ids if sample_ids is not None else torch.arange(n)
                passes += self._search(query, x, search, SampleRandom(self.seed, n, ids, x.device), early_stop)
            return search.output(first_success, passes)

    def _search(self, query, x: torch.Tensor, search: _Search, random: SampleRandom, early_stop: bool) -> int:
        """The random search; returns the forward queries it ran (summed over samples)."""
        start = self.inside(x, self.start(x, random))
        live = (~search.clean_fooled).nonzero().flatten()
        if live.numel() == 0:
            return 0
        search.offer(live, start[live], query(start[live]), 0)
        passes = int(live.numel())
        streams = _Streams(random, self.draws(x.shape[1]))
        active, changed, ran = live, True, 0
        for step in range(self.steps):
            if early_stop and changed:  # the active set only shrinks when a sample is newly fooled
                active = live[~search.done[live]]
                active_cpu, x_active = active.cpu(), x[active]
            elif step == 0:
                active_cpu, x_active = active.cpu(), x[active]
            if active.numel() == 0:
                break
            u = streams.at(step, active_cpu)
            candidate = self.inside(x_active, self.candidate(x_active, search.best[active], u, step))
            changed = search.offer(active, candidate, query(candidate), step + 1)
            passes += int(active.numel())
            ran = step + 1
        search.ran[live] = ran  # the samples dropped on success report their kept step instead
        return passes


@register("square-l2")
class SquareL2(Square):
    """L2 Square attack: a grid of eta squares to start; each query moves the mass of one window into another."""

    ball = L2

    def draws(self, channels: int) -> int:
        """Two windows' positions, the eta square's transpose flag and a sign per channel."""
        return 5 + channels

    def inside(self, x: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        """Into [0, 1] only: `start` and `candidate` rescale the perturbation to norm eps·‖δ‖/(‖δ‖ + 1e-12)
        ≤ eps, and clamping to [0, 1] only shrinks it. The base class's rescaling, which rounds
        differently, would make the search leave the reference's path (the L2 update amplifies rounding:
        with both windows empty, a window's new size is the square root of eps² − ‖δ‖²)."""
        return adv.clamp(0, 1)

    def side(self, step: int, c: int, h: int, w: int) -> int:
        p = p_selection(self.p_init, step, self.steps)
        s = max(int(round(math.sqrt(p * h * w))), 3)
        return min(s + 1 if s % 2 == 0 else s, h, w)

    def start(self, x: torch.Tensor, random: SampleRandom) -> torch.Tensor:
        """A grid of s×s eta squares (s = h/5), each with a random sign per channel and a random transpose,
        scaled to the ball's surface."""
        n, c, h, w = x.shape
        s = max(h // 5, 1)
        rows, cols = h // s, max(w // s, 1)
        u = random.uniform((n, rows * cols, 1 + c), x.dtype)
        base = eta(s).to(x.device, x.dtype)
        delta = torch.zeros_like(x)
        top, left0 = (h - s * rows) // 2, (w - s * cols) // 2  # the reference's (h − 5s)/2 when h/s = 5
        for r in range(rows):
            for k in range(cols):
                block = u[:, r * cols + k]
                square = torch.where(block[:, 0].view(n, 1, 1) > 0.5, base.T, base)
                left = left0 + k * s
                signs = _signs(block[:, 1:]).view(n, c, 1, 1)
                delta[:, :, top + r * s:top + (r + 1) * s, left:left + s] += square[:, None] * signs
        return x + delta / (_l2(delta) + 1e-12) * self.eps

    def candidate(self, x: torch.Tensor, best: torch.Tensor, u: torch.Tensor, step: int) -> torch.Tensor:
        """The reference's L2 update: window 1 gets a fresh eta square plus its old content, rescaled to carry
        the budget of both windows (and any unused budget); window 2 is emptied; the whole perturbation
        is rescaled onto the sphere of radius eps."""
        m, c, h, w = x.shape
        s = self.side(step, c, h, w)
        delta = best - x
        top, left = _offsets(u[:, 0], h, s), _offsets(u[:, 1], w, s)
        top2, left2 = _offsets(u[:, 2], h, s), _offsets(u[:, 3], w, s)
        first, second = _window_index(top, left, s, c), _window_index(top2, left2, s, c)
        old = delta[first]
        both = _window_mask(top, left, s, h, w) | _window_mask(top2, left2, s, h, w)
        # eps² in the input's precision, as the reference: when the windows are empty, the room is the
        # square root of a rounding residue, so its rounding decides the new window's size
        eps2 = torch.full((), self.eps, dtype=x.dtype, device=x.device) ** 2
        room = ((eps2 - _l2(delta) ** 2).clamp_min(0) / c + _l2(delta * both) ** 2).sqrt()
        base = eta(s).to(x.device, x.dtype)
        flipped = torch.where(u[:, 4].view(m, 1, 1) > 0.5, base.T, base)
        square = flipped[:, None] * _signs(u[:, 5:5 + c]).view(m, c, 1, 1)
        # contiguous: a transposed square would make the sums below add in another order than the reference
        new = (square + old / (1e-12 + old.square().sum(dim=(-2, -1), keepdim=True).sqrt())).contiguous()
        new = new / (1e-12 + new.square().sum(dim=(-2, -1), keepdim=True).sqrt()) * room
        delta[second] = 0.0
        delta[first] = new
        return x + delta / (_l2(delta) + 1e-12) * self.eps
