"""FlatParams: views into one aligned buffer, and an optimizer step over that
buffer that is bitwise the step over the separate arrays."""

import numpy as np
import pytest

import adamcore
from adamcore import _impl
from adamcore.flat import FlatParams
from helpers import DTYPES, IMPL_PARAMS, PARALLEL_MIN, assert_bitwise_equal, random_values

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)

#: Odd sizes (every vector tail), a 0-d and an empty param, and enough in all
#: that the flat step runs on threads while each separate array is serial.
SPEC = {"w1": (17, 33), "b1": 33, "w2": (33, 200), "b2": (200,), "scale": (),
        "empty": (0, 3), "emb": (500, 64)}
SIZES = {"w1": 561, "b1": 33, "w2": 6600, "b2": 200, "scale": 1, "empty": 0, "emb": 32000}


def shape_of(dims):
    return (dims,) if isinstance(dims, int) else dims


def values(rng, shape, dtype):
    return np.asarray(random_values(rng, shape, dtype))  # an array even for shape ()


def address(a):
    return a.__array_interface__["data"][0]


# ---- layout -----------------------------------------------------------------

@dtypes
def test_views_lie_back_to_back_in_spec_order_in_aligned_buffers(dtype):
    fp = FlatParams(SPEC, dtype)
    itemsize = np.dtype(dtype).itemsize
    assert fp.flat.shape == fp.flat_grad.shape == (sum(SIZES.values()),)
    assert fp.flat.dtype == fp.flat_grad.dtype == dtype
    assert address(fp.flat) % 64 == 0 and address(fp.flat_grad) % 64 == 0
    assert not fp.flat.any() and not fp.flat_grad.any()
    offset = 0
    for name, dims in SPEC.items():
        shape = shape_of(dims)
        for views, buffer in ((fp.params, fp.flat), (fp.grads, fp.flat_grad)):
            view = views[name]
            assert view.shape == shape and view.dtype == dtype and view.flags.c_contiguous
            assert view.flags.writeable
            if view.size:  # (an empty view's address is not meaningful)
                assert address(view) == address(buffer) + offset * itemsize
        offset += SIZES[name]


def test_writes_through_a_view_reach_the_buffer_and_back():
    fp = FlatParams({"w": (2, 3), "b": 3})
    fp["w"][1, 2] = 5.0
    fp.grad("b")[...] = [1.0, 2.0, 3.0]
    assert fp.flat[5] == 5.0 and list(fp.flat_grad[6:]) == [1.0, 2.0, 3.0]
    fp.flat[6] = -1.0
    fp.flat_grad[0] = 7.0
    assert fp.params["b"][0] == -1.0 and fp.grads["w"][0, 0] == 7.0
    np.matmul(np.ones((2, 1), np.float32), np.ones((1, 3), np.float32), out=fp.grads["w"])
    assert list(fp.flat_grad[:6]) == [1.0] * 6


def test_accessors_by_name():
    fp = FlatParams({"w": (2, 3), "b": 3})
    assert list(fp) == ["w", "b"] and len(fp) == 2
    assert fp["b"] is fp.params["b"] and fp.grad("w") is fp.grads["w"]
    assert list(fp.params) == list(fp.grads) == ["w", "b"]
    assert repr(fp) == "FlatParams(2 params, 9 float32 elements)"
    with pytest.raises(KeyError):
        fp["c"]


def test_a_list_spec_gives_views_in_order():
    fp = FlatParams([4, (2, 2), np.arange(3.0)], np.float64)
    assert list(fp) == [0, 1, 2] and len(fp) == 3
    assert isinstance(fp.params, tuple) and isinstance(fp.grads, tuple)
    assert [p.shape for p in fp.params] == [(4,), (2, 2), (3,)]
    assert fp[2] is fp.params[2] and fp.grad(1) is fp.grads[1]
    assert list(fp.flat) == [0.0] * 8 + [0.0, 1.0, 2.0]


def test_views_cannot_be_replaced_only_written_into():
    """``fp.grads["w"] = g`` would leave flat_grad untouched: it raises."""
    named, listed = FlatParams({"w": 3}), FlatParams([3])
    with pytest.raises(TypeError):
        named.grads["w"] = np.ones(3, np.float32)
    with pytest.raises(TypeError):
        named.params["w"] = np.ones(3, np.float32)
    with pytest.raises(TypeError):
        listed.grads[0] = np.ones(3, np.float32)
    with pytest.raises(AttributeError):
        named.flat = np.ones(3, np.float32)
    assert not named.flat_grad.any() and not listed.flat_grad.any()


def test_given_arrays_are_copied_in():
    w = np.asfortranarray(np.arange(6.0).reshape(2, 3))  # float64, F order
    b = np.array([1, 2, 3])                              # int
    fp = FlatParams({"w": w, "b": b, "c": 2})
    assert fp["w"].flags.c_contiguous and fp["w"].dtype == np.float32
    assert np.array_equal(fp["w"], w) and np.array_equal(fp["b"], b)
    assert list(fp.flat) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0, 0.0, 0.0]
    w[0, 0] = 9.0
    assert fp["w"][0, 0] == 0.0 and not np.shares_memory(fp.flat, w)


def test_split_gives_views_of_a_buffer_laid_out_like_flat():
    fp = FlatParams({"w": (2, 2), "b": 2})
    other = np.arange(6.0)
    views = fp.split(other)
    assert np.array_equal(views["w"], [[0.0, 1.0], [2.0, 3.0]]) and list(views["b"]) == [4.0, 5.0]
    assert np.shares_memory(views["w"], other)
    with pytest.raises(ValueError, match=r"array must be 1-D with 6 elements.*shape \(5,\)"):
        fp.split(np.zeros(5))
    with pytest.raises(TypeError, match="array must be a numpy.ndarray, got list"):
        fp.split([0.0] * 6)


BAD_SPECS = {
    "tuple": ((3, 4), TypeError, "spec must be a dict .* or a list"),
    "one-array": (np.zeros(3), TypeError, "spec must be a dict .* or a list"),
    "empty-dict": ({}, ValueError, "spec is empty"),
    "empty-list": ([], ValueError, "spec is empty"),
    "int-name": ({0: 3}, TypeError, "spec's names must be str, got 0"),
    "bool-size": ({"w": True}, TypeError, r"spec\['w'\] must be a shape or an array"),
    "float-dim": ({"w": (2, 3.0)}, TypeError, r"spec\['w'\] must be a shape"),
    "string": (["w"], TypeError, r"spec\[0\] must be a shape"),
    "negative-dim": ([(2, -1)], ValueError, r"spec\[0\] has a negative dimension"),
    "complex-array": ([np.zeros(2, complex)], TypeError, r"spec\[0\] must be a real-valued"),
}


@pytest.mark.parametrize("spec, error, message", BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_bad_spec_is_refused_naming_the_entry(spec, error, message):
    with pytest.raises(error, match=message):
        FlatParams(spec)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.complex64],
                         ids=lambda d: np.dtype(d).name)
def test_dtype_must_be_one_the_kernel_steps(dtype):
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        FlatParams([3], dtype)


# ---- stepping ---------------------------------------------------------------

OPTIMIZERS = {
    "adam": (adamcore.Adam, {}),
    "adam-l2-amsgrad": (adamcore.Adam, dict(weight_decay=0.1, amsgrad=True)),
    "adamw": (adamcore.AdamW, {}),
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("impl", IMPL_PARAMS)
@dtypes
def test_stepping_flat_is_bitwise_stepping_the_separate_arrays(rng, dtype, impl, optimizer):
    cls, options = OPTIMIZERS[optimizer]
    separate = {name: values(rng, shape_of(dims), dtype)
                for name, dims in SPEC.items()}
    fp = FlatParams(separate, dtype)
    assert fp.flat.size > PARALLEL_MIN
    opt_sep = cls(list(separate.values()), lr=1e-2, n_threads=2, impl=impl, **options)
    opt_flat = cls([fp.flat], lr=1e-2, n_threads=2, impl=impl, **options)
    for _ in range(10):
        grads = {name: values(rng, p.shape, dtype) for name, p in separate.items()}
        for name, g in grads.items():
            fp.grads[name][...] = g
        opt_sep.step(list(grads.values()))
        opt_flat.step([fp.flat_grad])
    flat_state = opt_flat.state[0]
    for i, name in enumerate(SPEC):
        assert_bitwise_equal(fp[name], separate[name], f"params[{name!r}]")
        state = opt_sep.state[i]
        assert state["step"] == flat_state["step"] == 10
        assert sorted(state) == sorted(flat_state)
        for key in set(state) - {"step"}:
            assert_bitwise_equal(fp.split(flat_state[key])[name], state[key], f"{key}[{name!r}]")


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_a_flat_step_hands_the_implementation_one_array(monkeypatch, impl):
    calls = []
    real = _impl.runner

    def counting_runner(impl_):
        def run(plan, grads, *args):
            calls.append([len(row.params) for row in plan.rows])
            return real(impl_)(plan, grads, *args)
        return run
    monkeypatch.setattr(_impl, "runner", counting_runner)
    fp = FlatParams({f"layer{k}": (8, 8) for k in range(50)})
    opt = adamcore.Adam([fp.flat], impl=impl)
    for _ in range(3):
        opt.step([fp.flat_grad])
    assert calls == [[], [1], [1], [1]]  # the first: the empty plan, before state exists
