"""Learning-rate schedules: each drives the param groups of one optimizer.

    opt = adamcore.AdamW(params, lr=3e-4)
    sched = adamcore.schedules.WarmupCosineLR(opt, warmup_steps=100, total_steps=10_000)
    for batch in batches:
        opt.step(grads(batch))
        sched.step()                # the lr of every group for the next opt.step

Names, arguments and values follow ``torch.optim.lr_scheduler``. Making a
schedule sets each group's lr to the schedule's value at step 0; after ``t``
calls of ``step()`` (``last_epoch == t``) it is the value at step ``t``,
computed in closed form from the group's base lr (its lr when the schedule was
made). Torch mostly chains ``lr *= ...`` instead, so the two agree to rounding
(within 3e-15 relative over 150 steps in the tests), not bit for bit.

A schedule writes only ``group["lr"]`` (OneCycleLR also beta1 in
``group["betas"]``), so it works with any optimizer class here and leaves
impl="c" and impl="numpy" bitwise equal. It writes holding the optimizer's
``lock`` (adamcore._base), so a step on another thread sees all of one
schedule step's values or none of them. Base lrs are kept in the schedule and
its ``state_dict()``, not in the groups as torch's "initial_lr": the
optimizers' ``load_state_dict`` refuses group keys they do not know.
"""

import contextlib
import copy
import math
import numbers

import numpy as np

from adamcore import _validate

__all__ = ["LRScheduler", "ConstantLR", "StepLR", "ExponentialLR", "WarmupCosineLR",
           "OneCycleLR", "ReduceLROnPlateau"]


# ---- argument checks ---------------------------------------------------------

def _int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _real(name, value, low=None, high=None, *, open_low=False, open_high=False):
    x = _validate._real(name, value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    too_low = low is not None and (x <= low if open_low else x < low)
    too_high = high is not None and (x >= high if open_high else x > high)
    if too_low or too_high:
        rules = []
        if low is not None:
            rules.append(f"{'>' if open_low else '>='} {low}")
        if high is not None:
            rules.append(f"{'<' if open_high else '<='} {high}")
        raise ValueError(f"{name} must be {' and '.join(rules)}, got {value!r}")
    return x


def _per_group(name, value, n, **bounds):
    """One float per param group from a number or a sequence of ``n`` numbers."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must be a number or {n} numbers (one per param group), "
                             f"got {len(value)}")
        return [_real(f"{name}[{i}]", v, **bounds) for i, v in enumerate(value)]
    return [_real(name, value, **bounds)] * n


def _bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _param_groups(optimizer):
    groups = getattr(optimizer, "param_groups", None)
    if not (isinstance(groups, list) and groups
            and all(isinstance(g, dict) and "lr" in g for g in groups)):
        raise TypeError("optimizer must have param_groups, a non-empty list of dicts with an "
                        f"'lr' (e.g. adamcore.Adam), got {type(optimizer).__name__}")
    return groups


def _lock_of(optimizer):
    """The optimizer's lock, or none for a duck-typed optimizer without one."""
    lock = getattr(optimizer, "lock", None)
    return lock if lock is not None else contextlib.nullcontext()


# ---- base ----------------------------------------------------------------------

class LRScheduler:
    """Base of the schedules: ``optimizer``, ``base_lrs`` (one per param
    group), ``last_epoch`` (the number of ``step()`` calls), ``get_last_lr()``
    and ``state_dict()`` / ``load_state_dict()``.

    A subclass gives ``_lrs(t)``, the lr of each group at step ``t``, or
    overrides ``_apply(t)``, which writes step ``t``'s values into the groups.
    ``load_state_dict`` also writes the loaded step's lrs into the groups, so
    a schedule and its optimizer may be restored in either order.
    """

    def __init__(self, optimizer, base_lrs=None):
        groups = _param_groups(optimizer)
        self.optimizer = optimizer
        self.base_lrs = [float(g["lr"]) for g in groups] if base_lrs is None else list(base_lrs)
        self.last_epoch = 0
        self._apply_locked(0)

    def _lrs(self, t):
        raise NotImplementedError

    def step(self):
        """Advance one step and set every group's lr to the schedule's next value."""
        with _lock_of(self.optimizer):  # two threads' steps: two epochs, never one twice
            self._apply(self.last_epoch + 1)  # first: a refused step changes nothing
            self.last_epoch += 1

    def get_last_lr(self):
        """The lr this schedule last set in each param group (a new list)."""
        return list(self._last_lr)

    def state_dict(self):
        """Every attribute but the optimizer, as a plain dict (a deep copy)."""
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` of the same class and group count, and set
        the groups' lrs to the restored step's."""
        expected = set(vars(self)) - {"optimizer"}
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{type(self).__name__} state_dict must have keys "
                             f"{sorted(expected)}, got {got}")
        if len(state_dict["base_lrs"]) != len(self.base_lrs):
            raise ValueError(f"state_dict is for {len(state_dict['base_lrs'])} param groups, "
                             f"this optimizer has {len(self.base_lrs)}")
        self.__dict__.update(copy.deepcopy(state_dict))
        self._apply_locked(self.last_epoch)

    def _apply_locked(self, t):
        with _lock_of(self.optimizer):
            self._apply(t)

    def _apply(self, t):
        self._write(self._lrs(t))

    def _groups(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(f"the optimizer has {len(groups)} param groups; this "
                             f"{type(self).__name__} was made for {len(self.base_lrs)}")
        return groups

    def _write(self, lrs):
        for group, lr in zip(self._groups(), lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)


# ---- closed-form schedules -------------------------------------------------------

class ConstantLR(LRScheduler):
    r"""Scale every lr by ``factor`` for the first ``total_iters`` steps::

        lr_t = base_lr * factor     if t < total_iters
               base_lr              otherwise

    As ``torch.optim.lr_scheduler.ConstantLR``; ``0 <= factor <= 1``.
    """

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5):
        self.factor = _real("factor", factor, 0, 1)
        self.total_iters = _int("total_iters", total_iters, 0)
        super().__init__(optimizer)

    def _lrs(self, t):
        scale = self.factor if t < self.total_iters else 1.0
        return [base * scale for base in self.base_lrs]


class StepLR(LRScheduler):
    r"""Multiply every lr by ``gamma`` once each ``step_size`` steps::

        lr_t = base_lr * gamma ** floor(t / step_size)

    As ``torch.optim.lr_scheduler.StepLR``.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _int("step_size", step_size, 1)
        self.gamma = _real("gamma", gamma, 0, open_low=True)
        super().__init__(optimizer)

    def _lrs(self, t):
        return [base * self.gamma ** (t // self.step_size) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    r"""Multiply every lr by ``gamma`` each step::

        lr_t = base_lr * gamma ** t

    As ``torch.optim.lr_scheduler.ExponentialLR``.
    """

    def __init__(self, optimizer, gamma):
        self.gamma = _real("gamma", gamma, 0, open_low=True)
        super().__init__(optimizer)

    def _lrs(self, t):
        return [base * self.gamma ** t for base in self.base_lrs]


class WarmupCosineLR(LRScheduler):
    r"""Linear warmup to the base lr, then cosine decay to ``min_lr``::

        w, T, s = warmup_steps, total_steps, warmup_start_factor
        lr_t = base_lr * (s + (1 - s) * t / w)                             if t < w
               min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - w) / (T - w))) / 2
                                                                           if w <= t <= T
               min_lr                                                      if t > T

    Torch's ``SequentialLR([LinearLR(start_factor=s, total_iters=w),
    CosineAnnealingLR(T_max=T - w, eta_min=min_lr)], milestones=[w])`` up to
    step T (after it, torch's cosine rises again; this one stays at min_lr).
    ``0 <= s <= 1`` (torch's LinearLR needs s > 0); ``min_lr`` is a number
    or one per param group.
    """

    def __init__(self, optimizer, warmup_steps, total_steps, warmup_start_factor=0.0,
                 min_lr=0.0):
        self.warmup_steps = _int("warmup_steps", warmup_steps, 0)
        self.total_steps = _int("total_steps", total_steps, 1)
        if self.total_steps <= self.warmup_steps:
            raise ValueError(f"total_steps must be > warmup_steps ({self.warmup_steps}), "
                             f"got {total_steps!r}")
        self.warmup_start_factor = _real("warmup_start_factor", warmup_start_factor, 0, 1)
        self.min_lrs = _per_group("min_lr", min_lr, len(_param_groups(optimizer)), low=0)
        super().__init__(optimizer)

    def _lrs(self, t):
        w, T, s = self.warmup_steps, self.total_steps, self.warmup_start_factor
        if t < w:
            scale = s + (1.0 - s) * t / w
            return [base * scale for base in self.base_lrs]
        if t > T:
            return list(self.min_lrs)
        cos_out = 1 + math.cos(math.pi * (t - w) / (T - w))
        return [low + (base - low) * cos_out / 2 for base, low in zip(self.base_lrs, self.min_lrs)]


def _anneal_cos(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start, end, pct):
    return (end - start) * pct + start


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topin, 2018): lr up from ``initial`` to
    ``max_lr``, then down to ``min`` far below ``initial``, while beta1 moves
    the opposite way between ``max_momentum`` and ``base_momentum``::

        initial = max_lr / div_factor,   min = initial / final_div_factor
        a = pct_start * total_steps - 1,   e = total_steps - 1
        phases (from step -> to step: lr, beta1):
          0 -> a: initial -> max_lr,  max_momentum -> base_momentum
          a -> e: max_lr -> min,      base_momentum -> max_momentum
        three_phase:
          0 -> a:        initial -> max_lr,  max_momentum -> base_momentum
          a -> 2a:       max_lr -> initial,  base_momentum -> max_momentum
          2a -> e:       initial -> min,     max_momentum
        within a phase, pct = (t - from) / (to - from) and
          cos:    x = to_x + (from_x - to_x) / 2 * (cos(pi * pct) + 1)
          linear: x = (to_x - from_x) * pct + from_x

    As ``torch.optim.lr_scheduler.OneCycleLR``, bitwise, for steps 0 to
    ``total_steps - 1``. ``step()`` may be called ``total_steps`` times, one
    more raises ValueError; the values of step ``total_steps`` repeat those of
    the cycle's end, where torch extrapolates the last phase (pytorch#91765;
    with ``anneal_strategy="linear"`` that gives a negative lr). With
    ``cycle_momentum`` (the default), beta1 of each group's ``betas`` is set
    each step. ``max_lr`` and the momenta are numbers or one per param group.
    Every phase must be non-empty: ``1 < pct_start * total_steps <
    total_steps`` (``< (total_steps + 1) / 2`` with three_phase).
    """

    def __init__(self, optimizer, max_lr, total_steps, *, pct_start=0.3, anneal_strategy="cos",
                 cycle_momentum=True, base_momentum=0.85, max_momentum=0.95, div_factor=25.0,
                 final_div_factor=1e4, three_phase=False):
        groups = _param_groups(optimizer)
        n = len(groups)
        self.total_steps = _int("total_steps", total_steps, 1)
        self.pct_start = _real("pct_start", pct_start, 0, 1)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.three_phase = _bool("three_phase", three_phase)
        ends = self._phase_ends()
        if not all(a < b for a, b in zip([0.0] + ends, ends)):
            raise ValueError(f"pct_start={pct_start!r} with total_steps={total_steps!r} leaves "
                             f"a phase empty (phases end at steps {ends})")
        self.cycle_momentum = _bool("cycle_momentum", cycle_momentum)
        if self.cycle_momentum and not all("betas" in g for g in groups):
            raise ValueError("cycle_momentum=True cycles beta1, but a param group has no 'betas'")
        self.base_momentums = _per_group("base_momentum", base_momentum, n,
                                         low=0, high=1, open_high=True)
        self.max_momentums = _per_group("max_momentum", max_momentum, n,
                                        low=0, high=1, open_high=True)
        div_factor = _real("div_factor", div_factor, 0, open_low=True)
        final_div_factor = _real("final_div_factor", final_div_factor, 0, open_low=True)
        self.max_lrs = _per_group("max_lr", max_lr, n, low=0)
        initial = [top / div_factor for top in self.max_lrs]
        self.min_lrs = [lr / final_div_factor for lr in initial]
        super().__init__(optimizer, base_lrs=initial)

    def _phase_ends(self):
        # torch's float arithmetic, so phases switch at the same steps
        a = float(self.pct_start * self.total_steps) - 1
        if self.three_phase:
            return [a, float(2 * self.pct_start * self.total_steps) - 2, self.total_steps - 1]
        return [a, self.total_steps - 1]

    def _values(self, t):
        """(lrs, beta1s) at step ``t``."""
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR stepped past total_steps={self.total_steps} "
                             f"(to step {t}); make a new schedule for another cycle")
        t = min(t, self.total_steps - 1)  # the last step() holds the cycle's end values
        lr0, top, low = self.base_lrs, self.max_lrs, self.min_lrs
        m_low, m_high = self.base_momentums, self.max_momentums
        if self.three_phase:
            legs = [(lr0, top, m_high, m_low), (top, lr0, m_low, m_high),
                    (lr0, low, m_high, m_high)]
        else:
            legs = [(lr0, top, m_high, m_low), (top, low, m_low, m_high)]
        ends = self._phase_ends()
        i = next(i for i, end in enumerate(ends) if t <= end)
        start = ends[i - 1] if i else 0.0
        pct = (t - start) / (ends[i] - start)
        anneal = _anneal_cos if self.anneal_strategy == "cos" else _anneal_linear
        lr_from, lr_to, m_from, m_to = legs[i]
        return ([anneal(a, b, pct) for a, b in zip(lr_from, lr_to)],
                [anneal(a, b, pct) for a, b in zip(m_from, m_to)])

    def _apply(self, t):
        lrs, beta1s = self._values(t)
        self._write(lrs)
        if self.cycle_momentum:
            for group, beta1 in zip(self.optimizer.param_groups, beta1s):
                group["betas"] = (beta1, *group["betas"][1:])


# ---- metric-driven ---------------------------------------------------------------

class ReduceLROnPlateau(LRScheduler):
    r"""Cut the lrs by ``factor`` when a monitored metric stops improving.

    Each ``step(metric)``::

        better = metric < best * (1 - threshold)     mode "min", threshold_mode "rel"
                 metric < best - threshold           mode "min", "abs"
                 metric > best * (1 + threshold)     mode "max", "rel"
                 metric > best + threshold           mode "max", "abs"
        if better: best = metric; bad = 0   else: bad += 1
        if cooling down: cooldown_counter -= 1; bad = 0
        if bad > patience:
            lr = max(lr * factor, min_lr)  for each group, unless that changes lr by <= eps
            cooldown_counter = cooldown; bad = 0

    As ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (bitwise the same
    lrs). ``best`` starts at +inf ("min") or -inf ("max"); each cut starts
    from the group's current lr; ``min_lr`` is a number or one per group.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        groups = _param_groups(optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.mode = mode
        self.threshold_mode = threshold_mode
        self.factor = _real("factor", factor, 0, 1, open_high=True)
        self.patience = _int("patience", patience, 0)
        self.threshold = _real("threshold", threshold, 0)
        self.cooldown = _int("cooldown", cooldown, 0)
        self.min_lrs = _per_group("min_lr", min_lr, len(groups), low=0)
        self.eps = _real("eps", eps, 0)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        # No closed form: the lrs depend on the metrics seen, so the last
        # ones are the state that _apply (re)writes.
        self._last_lr = [float(g["lr"]) for g in groups]
        super().__init__(optimizer)

    def _apply(self, t):
        self._write(self._last_lr)

    def step(self, metric):
        """Record one value of the monitored metric; cut the lrs if it has not
        improved for more than ``patience`` steps."""
        current = float(metric)
        with _lock_of(self.optimizer):  # the lrs read, cut and written in one go
            self._cut(current)
            self.last_epoch += 1

    def _cut(self, current):
        lrs = [float(g["lr"]) for g in self._groups()]
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            cut = [max(lr * self.factor, low) for lr, low in zip(lrs, self.min_lrs)]
            lrs = [new if old - new > self.eps else old for old, new in zip(lrs, cut)]
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._write(lrs)

    def _is_better(self, current):
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return current < (self.best * (1.0 - self.threshold) if rel
                              else self.best - self.threshold)
        return current > (self.best * (self.threshold + 1.0) if rel
                          else self.best + self.threshold)
