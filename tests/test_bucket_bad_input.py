"""The raw step entry points, ``step_buckets`` of adamcore._kernel and of
adamcore.reference, on bad buckets of every kind: both refuse with the same
error, naming the argument, and write nothing; odd but valid input steps to
the same bits on both, or both refuse alike."""

import dataclasses
import math

import numpy as np
import pytest

from adamcore import _impl, kinds
from adamcore.plan import Bucket
from helpers import IMPL_PARAMS, assert_unchanged, make_hyper, requires_kernel, snapshot

NAN, INF = math.nan, math.inf
IMPLS = ("c", "numpy")
#: Valid hyperparameters of each kind (lr aside): every kind's tests start here.
BASE = dict(adam=dict(beta1=0.9, beta2=0.999, eps=1e-8), sgd=dict(momentum=0.9),
            rmsprop=dict(alpha=0.99, eps=1e-8), adagrad=dict(eps=1e-10),
            adabelief=dict(beta1=0.9, beta2=0.999, eps=1e-16))
KIND_NAMES = list(kinds.KINDS)
assert set(BASE) == set(KIND_NAMES), "a new kind needs its BASE entry here"


def _arrays(n=6, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype),
            [np.abs(rng.standard_normal(n)).astype(dtype) for _ in range(3)])


def _h(kind="adagrad", **kw):
    return make_hyper(kind, lr=0.01, **{**BASE[kind], **kw})


def _bucket(kind="adagrad", slots=None, hyper=None, n=6, dtype=np.float32, seed=0, k=1):
    """A valid bucket of ``k`` tensors; ``slots`` overrides which slots are given."""
    h = _h(kind) if hyper is None else hyper
    need = kinds.KINDS[kind].required(h) if slots is None else slots
    tensors = [_arrays(n, dtype, seed + j) for j in range(k)]
    states = tuple([t[2][s] for t in tensors] if need[s] else None for s in range(3))
    return Bucket(kinds.KINDS[kind], h, 1, [t[0] for t in tensors], [t[1] for t in tensors],
                  states, list(range(k)) if k > 1 else None)


def _b(**changes):
    return dataclasses.replace(_bucket(), **changes)


def _h_with(kind="adagrad", **changes):
    return dataclasses.replace(_h(kind), **changes)


def _aliased(grad=None, state=None):
    """An Adagrad bucket whose grad is its param or its state ("param", "state"),
    or whose state overlaps its param by all but one element (state="param")."""
    buf = np.random.default_rng(5).standard_normal(12).astype(np.float32)
    p, g, s = buf[:6], np.ones(6, np.float32), np.ones(6, np.float32)
    if grad == "param":
        g = p
    elif grad == "state":
        g = s
    if state == "param":
        s = buf[5:11]
    return Bucket(kinds.ADAGRAD, _h(), 1, [p], [g], ([s], None, None))


def _param_in_two_buckets():
    """The same param in two buckets of one call, each with its own grad and state."""
    b = _bucket()
    return [b, dataclasses.replace(b, grads=[np.ones(6, np.float32)],
                                   states=([np.ones(6, np.float32)], None, None))]


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _last_bad(where, value, kind="adam"):
    """A 5-tensor bucket of ``kind`` whose last param, grad or slot-0 state is ``value``."""
    b = _bucket(kind, k=5)
    if where == "state":
        b.states[0][-1] = value
    else:
        getattr(b, where + "s")[-1] = value
    return b


def _state_overlaps_other_param():
    b = _bucket("adam", k=3, n=8)
    buf = np.zeros(16, np.float32)
    b.params[0] = buf[:8]
    b.states[1][2] = buf[6:14]  # shares two elements with params[0]
    return b


# (id, (buckets, n_threads) builder, exception, regex)
RAW_CASES = [
    ("bucket-tuple", lambda: ([dataclasses.astuple(_bucket())], None), TypeError,
     r"^each bucket must be an adamcore.plan.Bucket, got tuple"),
    ("bucket-none", lambda: ([None], None), TypeError, r"^each bucket must be an adamcore"),
    ("second-bucket-bad", lambda: ([_bucket(), "x"], None), TypeError,
     r"^each bucket must be an adamcore.plan.Bucket, got str"),
    ("kind-a-name", lambda: ([_b(kind="adagrad")], None), TypeError,
     r"^a bucket's kind must be an adamcore.plan.Kind, got str"),
    ("hyper-of-another-kind", lambda: ([_b(hyper=_h("sgd"))], None), TypeError,
     r"^hyper must be an adamcore.kinds.AdagradHyper, got SGDHyper"),
    ("hyper-a-dict", lambda: ([_b(hyper=dataclasses.asdict(_h()))], None), TypeError,
     r"^hyper must be an adamcore.kinds.AdagradHyper, got dict"),
    ("states-list", lambda: ([_b(states=[None, None, None])], None), TypeError,
     r"^a bucket's states must be a tuple of 3 lists or None"),
    ("states-2", lambda: ([_b(states=(None, None))], None), TypeError,
     r"^a bucket's states must be a tuple of 3"),
    ("states-none", lambda: ([_b(states=None)], None), TypeError,
     r"^a bucket's states must be a tuple of 3"),
    ("slot-a-tuple", lambda: ([_b(states=((np.zeros(6, np.float32),), None, None))], None),
     TypeError, r"^a bucket's states must be a tuple of 3 lists or None"),
    ("adagrad-missing-sum", lambda: ([_bucket(slots=(0, 0, 0))], None), ValueError,
     r"^state 'sum' is missing with these hyperparameters"),
    ("adagrad-extra-slot", lambda: ([_bucket(slots=(1, 1, 0))], None), ValueError,
     r"^state slot 1 is not used with these hyperparameters"),
    ("adam-missing-max", lambda: ([_bucket("adam", slots=(1, 1, 0), hyper=_h(
        "adam", amsgrad=True))], None), ValueError, r"^state 'max_exp_avg_sq' is missing"),
    ("adam-extra-max", lambda: ([_bucket("adam", slots=(1, 1, 1))], None), ValueError,
     r"^state 'max_exp_avg_sq' is not used"),
    ("sgd-missing-buffer", lambda: ([_bucket("sgd", slots=(0, 0, 0))], None), ValueError,
     r"^state 'momentum_buffer' is missing"),
    ("sgd-momentum0-extra-buffer",
     lambda: ([_bucket("sgd", slots=(1, 0, 0), hyper=_h("sgd", momentum=0.0))], None),
     ValueError, r"^state 'momentum_buffer' is not used"),
    ("rmsprop-missing-grad_avg",
     lambda: ([_bucket("rmsprop", slots=(1, 0, 0), hyper=_h("rmsprop", centered=True))], None),
     ValueError, r"^state 'grad_avg' is missing"),
    ("rmsprop-extra-momentum_buffer",
     lambda: ([_bucket("rmsprop", slots=(1, 1, 0))], None), ValueError,
     r"^state 'momentum_buffer' is not used"),
    ("adabelief-missing-exp_avg_var", lambda: ([_bucket("adabelief", slots=(1, 0, 0))], None),
     ValueError, r"^state 'exp_avg_var' is missing"),
    ("adabelief-ams-missing-max",
     lambda: ([_bucket("adabelief", slots=(1, 1, 0), hyper=_h("adabelief", amsgrad=True))],
              None), ValueError, r"^state 'max_exp_avg_var' is missing"),
    ("slot-wrong-length",
     lambda: ([_b(states=([np.zeros(6, np.float32)] * 2, None, None))], None), ValueError,
     r"^expected 1 sum arrays, got 2"),
    ("grads-too-few", lambda: ([_b(grads=[])], None), ValueError,
     r"^expected 1 grads \(one per param\), got 0"),
    ("grads-a-tuple", lambda: ([_b(grads=(np.ones(6, np.float32),))], None), TypeError,
     r"^grads must be a list, got tuple"),
    ("params-a-tuple", lambda: ([_b(params=tuple(_bucket().params))], None), TypeError,
     r"^params must be a list, got tuple"),
    ("indices-too-few", lambda: ([dataclasses.replace(_bucket(k=3), indices=[0])], None),
     ValueError, r"^expected 3 indices \(one per param\), got 1"),
    ("step0", lambda: ([_b(step=0)], None), ValueError, r"^step must be in \[1, 2\*\*63\)"),
    ("step-float", lambda: ([_b(step=2.0)], None), TypeError, r"^step must be an integer, got float"),
    ("step-2**63", lambda: ([_b(step=2 ** 63)], None), ValueError,
     r"^step must be in \[1, 2\*\*63\)"),
    ("first-int", lambda: ([_b(first=1)], None), TypeError, r"^first must be a bool, got int"),
    ("grad_scale-negative", lambda: ([_b(grad_scale=-1.0)], None), ValueError,
     r"^grad_scale must be finite and >= 0"),
    ("grad_scale-inf", lambda: ([_b(grad_scale=INF)], None), ValueError,
     r"^grad_scale must be finite and >= 0"),
    ("lr-negative", lambda: ([_b(hyper=_h_with(lr=-1.0))], None), ValueError,
     r"^Invalid learning rate"),
    ("lr-str", lambda: ([_b(hyper=_h_with(lr="1"))], None), TypeError,
     r"^lr must be a real number, got str"),
    ("eps-nan", lambda: ([_b(hyper=_h_with(eps=NAN))], None), ValueError,
     r"^Invalid epsilon value"),
    ("maximize-int", lambda: ([_b(hyper=_h_with(maximize=1))], None), TypeError,
     r"^maximize must be a bool, got int"),
    ("adam-eps_mode", lambda: ([_bucket("adam", hyper=_h_with("adam", eps_mode="tf"))], None),
     ValueError, r"^eps_mode must be 'torch' or 'keras', got 'tf'"),
    ("adam-beta1-1", lambda: ([_bucket("adam", hyper=_h_with("adam", beta1=1.0))], None),
     ValueError, r"^Invalid beta parameter at index 0"),
    ("adam-decoupled-str", lambda: ([_bucket("adam", hyper=_h_with("adam", decoupled="no"))],
                                    None), TypeError, r"^decoupled must be a bool, got str"),
    ("sgd-nesterov-dampening",
     lambda: ([_bucket("sgd", hyper=_h("sgd", nesterov=True, dampening=0.5))], None),
     ValueError, r"^Nesterov momentum requires"),
    ("sgd-dampening-inf", lambda: ([_bucket("sgd", hyper=_h("sgd", dampening=INF))], None),
     ValueError, r"^Invalid dampening value"),
    ("rmsprop-alpha-inf", lambda: ([_bucket("rmsprop", hyper=_h("rmsprop", alpha=INF))], None),
     ValueError, r"^Invalid alpha value"),
    ("adabelief-beta2-1",
     lambda: ([_bucket("adabelief", hyper=_h("adabelief", beta2=1.0))], None), ValueError,
     r"^Invalid beta parameter at index 1"),
    ("n_threads0", lambda: ([_bucket()], 0), ValueError, r"^n_threads must be None, >= 1"),
    ("n_threads-str", lambda: ([_bucket()], "1"), TypeError, r"^n_threads must be an integer"),
    ("n_threads0-and-bad-lr", lambda: ([_b(hyper=_h_with(lr=-1.0))], 0), ValueError,
     r"^n_threads must be None, >= 1"),
    # Refusal order: the first problem in bucket order, whatever its kind.
    ("bad-array-before-bad-hyper",
     lambda: ([_b(grads=[np.ones(6)]), dataclasses.replace(_bucket(seed=1),
                                                           hyper=_h_with(lr=-1.0))], None),
     TypeError, r"^grad has dtype float64 but param has dtype float32"),
    ("param-is-grad", lambda: ([_aliased(grad="param")], None), ValueError,
     r"^(param|grad) overlaps (param|grad) in memory"),
    ("grad-is-state", lambda: ([_aliased(grad="state")], None), ValueError,
     r"^(sum|grad) overlaps (sum|grad) in memory"),
    ("state-overlaps-param", lambda: ([_aliased(state="param")], None), ValueError,
     r"^(sum|param) overlaps (sum|param) in memory"),
    ("state-overlaps-other-param", lambda: ([_state_overlaps_other_param()], None), ValueError,
     r"^(params\[0\]|exp_avg_sqs\[2\]) overlaps (params\[0\]|exp_avg_sqs\[2\]) in memory"),
    ("mixed-dtypes-one-bucket",
     lambda: ([Bucket(kinds.ADAGRAD, _h(), 1, [np.ones(3, np.float32), np.ones(3)],
                      [np.ones(3, np.float32), np.ones(3)],
                      ([np.ones(3, np.float32), np.ones(3)], None, None), [0, 1])], None),
     TypeError, r"^params\[1\] has dtype float64 but the other params of this call have float32"),
    ("param-in-two-buckets", lambda: (_param_in_two_buckets(), None), ValueError,
     r"overlaps .* in memory"),
    ("last-grad-dtype", lambda: ([_last_bad("grad", np.ones(6))], None), TypeError,
     r"^grads\[4\] has dtype float64 but params\[4\] has dtype float32"),
    ("last-grad-noncontiguous", lambda: ([_last_bad("grad", np.ones(12, np.float32)[::2])],
                                         None), ValueError,
     r"^grads\[4\] must be C-contiguous like params\[4\]"),
    ("last-param-readonly", lambda: ([_last_bad("param", _readonly(np.ones(6, np.float32)))],
                                     None), ValueError, r"^params\[4\] is read-only"),
    ("last-state-none", lambda: ([_last_bad("state", None)], None), TypeError,
     r"^exp_avgs\[4\] must be a numpy.ndarray, got NoneType"),
    ("buckets-tuple", lambda: (tuple([_bucket()]), None), TypeError,
     r"^buckets must be a list, got tuple"),
    ("buckets-none", lambda: (None, None), TypeError, r"^buckets must be a list, got NoneType"),
]


def _all_arrays(buckets):
    """Every array reachable from ``buckets`` (to check that nothing was written)."""
    out = []

    def walk(x):
        if isinstance(x, np.ndarray):
            out.append(x)
        elif isinstance(x, Bucket):
            walk([x.params, x.grads, x.states])
        elif isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
    walk(buckets)
    return out


def _raw_raise(build, impl, exc, pattern):
    buckets, n_threads = build()
    arrays = _all_arrays(buckets)
    snap = snapshot(arrays)
    with pytest.raises(exc, match=pattern) as info:
        _impl.bucket_stepper(impl)(buckets, n_threads)
    assert_unchanged(arrays, snap, "array")
    return info.value


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("case", RAW_CASES, ids=lambda c: c[0])
def test_raw_entry_point_refuses(case, impl):
    _, build, exc, pattern = case
    _raw_raise(build, impl, exc, pattern)


@requires_kernel
@pytest.mark.parametrize("case", RAW_CASES, ids=lambda c: c[0])
def test_raw_entry_points_same_error(case):
    _, build, exc, pattern = case
    errors = [_raw_raise(build, impl, exc, pattern) for impl in IMPLS]
    assert (type(errors[0]), str(errors[0])) == (type(errors[1]), str(errors[1]))


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_kind_refuses_a_bad_grad_and_a_bad_lr(kind, impl):
    """Each kind of the registry, whatever its fields, refuses alike."""
    _raw_raise(lambda: ([_last_bad("grad", np.ones(7, np.float32), kind)], None), impl,
               ValueError, r"^grads\[4\] has shape \(7,\) but params\[4\] has shape \(6,\)")
    _raw_raise(lambda: ([_bucket(kind, hyper=_h_with(kind, lr=-1.0))], None), impl,
               ValueError, r"^Invalid learning rate")


# Odd but arguably valid buckets: the two entry points must both raise the same
# error or both step to the same bits.
ODD_CASES = [
    ("empty-bucket", lambda: [Bucket(kinds.ADAGRAD, _h(), 1, [], [], ([], None, None))]),
    ("empty-arrays", lambda: [_bucket(n=0)]),
    ("numpy-scalars", lambda: [_b(hyper=_h_with(lr=np.float32(0.01), maximize=np.bool_(True)),
                                  step=np.int64(3), first=np.bool_(False),
                                  grad_scale=np.float64(0.5))]),
    ("adam-numpy-scalars", lambda: [_bucket("adam", hyper=_h_with(
        "adam", beta1=np.float64(0.8), amsgrad=np.bool_(True)))]),
    ("read-only-grad", lambda: [_b(grads=[_readonly(_bucket().grads[0])])]),
    ("no-buckets", lambda: []),
    ("dampening-negative", lambda: [_bucket("sgd", hyper=_h("sgd", dampening=-0.5))]),
    ("grad_scale-nan", lambda: [_b(grad_scale=NAN)]),
    ("huge-int-lr", lambda: [_b(hyper=_h_with(lr=2 ** 70))]),
    ("every-kind", lambda: [_bucket(k, seed=j) for j, k in enumerate(KIND_NAMES)]),
]


@requires_kernel
@pytest.mark.parametrize("case", ODD_CASES, ids=lambda c: c[0])
def test_raw_entry_points_both_raise_or_both_agree(case):
    _, build = case
    outcomes = []
    for impl in IMPLS:
        buckets = build()
        try:
            _impl.bucket_stepper(impl)(buckets, None)
        except Exception as exc:  # noqa: BLE001 - compared below
            outcomes.append(("raised", type(exc).__name__, str(exc)))
        else:
            outcomes.append(("stepped", [a.tobytes() for a in _all_arrays(buckets)]))
    assert outcomes[0] == outcomes[1], f"C: {outcomes[0]!r:.300}\nNumPy: {outcomes[1]!r:.300}"
