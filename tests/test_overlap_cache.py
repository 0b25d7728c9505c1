"""The overlap check with a plan's kept spans (adamcore/_spans.pxi,
_step_disjoint): the binding keeps the sorted byte spans of a plan's params
and state, and of the last grads found disjoint from them, in the plan's
compiled form. Whatever sequence of layouts comes, each step's verdict must
be the one a brute-force pairwise test gives for that step alone, and a
refused step must write nothing.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adamcore
from adamcore import kinds
from adamcore.plan import Plan
from helpers import requires_kernel

pytestmark = requires_kernel

MEM = 96  # float32 elements every buffer of a case is carved from
OPTIONS = {"adam": dict(adamcore.Adam([np.zeros(1)]).defaults),
           "adabelief": dict(adamcore.AdaBelief([np.zeros(1)], eps=1e-8).defaults)}


def _kernel():
    from adamcore import _kernel
    return _kernel


def _overlapping(arrays):
    """Brute force: do any two non-empty arrays share a byte?"""
    spans = [(a.ctypes.data, a.ctypes.data + a.nbytes) for a in arrays if a.nbytes]
    return any(s1 < e2 and s2 < e1
               for i, (s1, e1) in enumerate(spans) for s2, e2 in spans[:i])


# A layout: per tensor, its size and the offsets of its param and two state
# arrays in MEM; a grads layout: per tensor, its grad's offset. Offsets are
# drawn freely, so overlaps are common.
tensor = st.integers(0, 8).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.integers(0, MEM - n), min_size=3, max_size=3)))
layout = st.lists(tensor, min_size=1, max_size=4)


def _plan(kind, mem, lay):
    """A plan of one group over views of ``mem`` at the layout's offsets."""
    params, arrays = [], []
    slots = kinds.KINDS[kind].slots
    for n, (p, m, v) in lay:
        params.append(mem[p:p + n])
        arrays.append({slots[0]: mem[m:m + n], slots[1]: mem[v:v + n]})
    group = {**OPTIONS[kind], "params": params}
    return Plan.build(kinds.KINDS[kind], [group], arrays, np.zeros(len(lay), np.int64))


def _grads(mem, lay, offsets):
    return [mem[off % (MEM - n + 1):off % (MEM - n + 1) + n] for (n, _), off in zip(lay, offsets)]


@pytest.mark.parametrize("kind", ["adam", "adabelief"])
@settings(max_examples=300, deadline=None)
@given(lay=layout, grads=st.lists(st.lists(st.integers(0, MEM), min_size=4, max_size=4),
                                  min_size=1, max_size=3),
       order=st.lists(st.integers(0, 2), min_size=1, max_size=8))
def test_verdict_matches_brute_force_across_steps(kind, lay, grads, order):
    """One plan (its spans kept from run to run), grads at changing places."""
    mem = np.zeros(MEM, np.float32)
    plan = _plan(kind, mem, lay)
    state = [a for row in plan.rows for a in row.params + row.states[0] + row.states[1]]
    for pick in order:
        gs = _grads(mem, lay, grads[pick % len(grads)])
        mem[:] = np.arange(MEM, dtype=np.float32) / MEM + 0.5
        before = mem.copy()
        if _overlapping(state + gs):
            with pytest.raises(ValueError, match="overlaps"):
                _kernel().run(plan, gs, 1.0, 1)
            np.testing.assert_array_equal(mem, before)
        else:
            assert _kernel().run(plan, gs, 1.0, 1)
            written = [a for a in state if a.size]
            assert not written or not np.array_equal(mem, before)


def _fresh_optimizer(n=4, size=64):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(size).astype(np.float32) for _ in range(n)]
    grads = [rng.standard_normal(size).astype(np.float32) for _ in range(n)]
    opt = adamcore.Adam(params, impl="c")
    for _ in range(3):  # the spans are kept from here on
        opt.step(grads)
    return opt, params, grads


def _snapshot(opt, params):
    return [p.copy() for p in params], {i: {k: a.copy() for k, a in st.items() if k != "step"}
                                        for i, st in opt.state.items()}


@pytest.mark.parametrize("alias", ["param", "other grad", "exp_avg", "exp_avg_sq"])
def test_kept_spans_still_refuse_an_aliasing_grad(alias):
    """After steps that kept the spans, a grad aliasing a param, another grad
    or a state array is refused, with nothing written."""
    opt, params, grads = _fresh_optimizer()
    bad = list(grads)
    bad[2] = {"param": params[1], "other grad": grads[0],
              "exp_avg": opt.state[3]["exp_avg"], "exp_avg_sq": opt.state[0]["exp_avg_sq"]}[alias]
    saved_params, saved_state = _snapshot(opt, params)
    with pytest.raises(ValueError, match="overlaps"):
        opt.step(bad)
    for p, q in zip(params, saved_params):
        np.testing.assert_array_equal(p, q)
    for i, saved in saved_state.items():
        for k, a in saved.items():
            np.testing.assert_array_equal(opt.state[i][k], a)
    assert opt.state[0]["step"] == 3
    opt.step(grads)  # and the good grads step again
    assert opt.state[0]["step"] == 4


def test_moved_state_is_checked_again():
    """load_state_dict moves the state: a grad aliasing the new state is
    refused, and the old addresses are free for grads."""
    opt, params, grads = _fresh_optimizer()
    old_exp_avg = opt.state[1]["exp_avg"]
    opt.load_state_dict(opt.state_dict())
    opt.step([grads[0], old_exp_avg.copy(), grads[2], grads[3]])
    with pytest.raises(ValueError, match="overlaps"):
        opt.step([grads[0], opt.state[1]["exp_avg"], grads[2], grads[3]])


@pytest.mark.parametrize("kind", ["adam", "adabelief"])
def test_grads_kept_as_disjoint_are_checked_again_when_state_moves(kind):
    """The grads' spans were found disjoint from one plan's state and kept:
    with the same grads, a plan whose state lies on one of them (state moves
    only with a new plan), or a run that skips a param (other spans), is
    checked again."""
    mem = np.zeros(MEM, np.float32)
    grads = [mem[8:16]]
    plan = _plan(kind, mem, [(8, (0, 16, 24))])
    assert _kernel().run(plan, grads, 1.0, 1)
    assert _kernel().run(plan, grads, 1.0, 1)  # kept
    moved = _plan(kind, mem, [(8, (0, 12, 24))])
    before = mem.copy()
    with pytest.raises(ValueError, match="overlaps"):
        _kernel().run(moved, grads, 1.0, 1)
    np.testing.assert_array_equal(mem, before)
    two = _plan(kind, mem, [(8, (0, 16, 24)), (8, (32, 40, 48))])
    assert _kernel().run(two, [mem[56:64], mem[64:72]], 1.0, 1)
    assert _kernel().run(two, [None, mem[64:72]], 1.0, 1)  # spans of param 1 only
    with pytest.raises(ValueError, match="overlaps"):
        _kernel().run(two, [None, mem[44:52]], 1.0, 1)
