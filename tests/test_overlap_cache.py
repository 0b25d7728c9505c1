"""The overlap check with an optimizer's kept spans (adamcore/_kernel.pyx,
_step_disjoint): the binding keeps the sorted byte spans of the last step's
params and state, and of grads already found disjoint from them, in the
scratch dict it is given. Whatever sequence of layouts comes, each step's
verdict must be the one a brute-force pairwise test gives for that step
alone, and a refused step must write nothing.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adamcore
from adamcore import _validate
from conftest import requires_kernel

pytestmark = requires_kernel

MEM = 96  # float32 elements every buffer of a case is carved from
ADAM_HYPER = (1e-3, 0.9, 0.999, 1e-8, 0.0, 1, False, False, "torch", 1.0)


def _kernel():
    from adamcore import _kernel
    return _kernel


def _overlapping(arrays):
    """Brute force: do any two non-empty arrays share a byte?"""
    spans = [(a.ctypes.data, a.ctypes.data + a.nbytes) for a in arrays if a.nbytes]
    return any(s1 < e2 and s2 < e1
               for i, (s1, e1) in enumerate(spans) for s2, e2 in spans[:i])


# A layout: per tensor, its size and the offsets of its param, grad and two
# state arrays in MEM. Offsets are drawn freely, so overlaps are common.
tensor = st.integers(0, 8).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.integers(0, MEM - n), min_size=4, max_size=4)))
layout = st.lists(tensor, min_size=1, max_size=4)


def _views(mem, lay):
    """(params, grads, states): views of ``mem`` at the layout's offsets."""
    out = ([], [], [], [])
    for n, offsets in lay:
        for column, off in zip(out, offsets):
            column.append(mem[off:off + n])
    return out[0], out[1], (out[2], out[3])


def _adam_step(arrays, scratch):
    params, grads, (ms, vs) = arrays
    bucket = (params, grads, ms, vs, None, None, ADAM_HYPER)
    _kernel().adam_step_buckets([bucket], 1, scratch)


def _family_step(arrays, scratch):
    params, grads, (ms, vs) = arrays
    hyper = _validate.family_hyper("adabelief", 1e-3, beta1=0.9, beta2=0.999, eps=1e-8)
    _kernel().family_step_buckets([(params, grads, (ms, vs, None), None, hyper)], 1, scratch)


@pytest.mark.parametrize("step", [_adam_step, _family_step], ids=["adam", "family"])
@settings(max_examples=300, deadline=None)
@given(layouts=st.lists(layout, min_size=1, max_size=3),
       order=st.lists(st.integers(0, 2), min_size=1, max_size=8))
def test_verdict_matches_brute_force_across_steps(step, layouts, order):
    mem = np.zeros(MEM, np.float32)
    scratch = {}
    for pick in order:
        lay = layouts[pick % len(layouts)]
        arrays = _views(mem, lay)
        params, grads, states = arrays
        mem[:] = np.arange(MEM, dtype=np.float32) / MEM + 0.5
        before = mem.copy()
        if _overlapping(params + grads + states[0] + states[1]):
            with pytest.raises(ValueError, match="overlaps"):
                step(arrays, scratch)
            np.testing.assert_array_equal(mem, before)
        else:
            step(arrays, scratch)
            written = [a for a in params + states[0] + states[1] if a.size]
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
    for i, st in saved_state.items():
        for k, a in st.items():
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


@pytest.mark.parametrize("step", [_adam_step, _family_step], ids=["adam", "family"])
def test_grads_kept_as_disjoint_are_checked_again_when_state_moves(step):
    """The grads' spans were found disjoint from other state: with the same
    grads, state that moved onto one of them is refused."""
    mem = np.zeros(MEM, np.float32)
    scratch = {}
    params, grads = [mem[0:8]], [mem[8:16]]
    step((params, grads, ([mem[16:24]], [mem[24:32]])), scratch)
    step((params, grads, ([mem[16:24]], [mem[24:32]])), scratch)  # kept
    before = mem.copy()
    with pytest.raises(ValueError, match="overlaps"):
        step((params, grads, ([mem[12:20]], [mem[24:32]])), scratch)
    np.testing.assert_array_equal(mem, before)
