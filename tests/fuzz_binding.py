"""Fuzz target for the binding's argument checks (adamcore._kernel).

Each case calls one entry point (``functional.adam_step``, ``step_buckets``
or ``run`` of a plan) with random
arguments: arrays of random dtype, byte order, shape, layout, alignment,
writeability and aliasing; hyperparameters that are valid, NaN, infinite,
negative, huge, bools, NumPy scalars or of the wrong type; random bucket
structures. The same case is built twice (from the same choices) and run once
through the C binding and once through the NumPy reference. The invariant:

- both succeed, and every buffer holds the same values afterwards (NaN
  matching NaN), or
- both raise TypeError or ValueError with the same message, and no byte of
  any buffer has changed.

Anything else (another exception, a crash, a write on refusal, one side
refusing what the other accepts) is a failure.

    python tests/fuzz_binding.py --plain --seconds 30 [--seed N]   seeded random
    python tests/fuzz_binding.py -max_total_time=30                atheris
"""

import argparse
import decimal
import fractions
import random
import re
import sys
import time

import numpy as np

if __name__ == "__main__" and "--plain" not in sys.argv:
    # Under atheris, coverage of adamcore's Python code guides the search
    # (instrumenting every loaded module instead takes most of a short run).
    import atheris

    with atheris.instrument_imports(include=["adamcore"]):
        from adamcore import _impl, functional, kinds, reference
        from adamcore.plan import Bucket, Plan
else:
    from adamcore import _impl, functional, kinds, reference
    from adamcore.plan import Bucket, Plan

KERNEL = _impl.kernel()
ENTRIES = ("functional", "buckets", "plan")


# ---- sources of choices -----------------------------------------------------

class RandomChoices:
    """Choices from a seeded random.Random."""

    def __init__(self, seed):
        self.r = random.Random(seed)

    def int(self, lo, hi):
        return self.r.randint(lo, hi)

    def chance(self, p):
        return self.r.random() < p


class AtherisChoices:
    """Choices from atheris's FuzzedDataProvider (zeros once data runs out)."""

    def __init__(self, fdp):
        self.fdp = fdp

    def int(self, lo, hi):
        return self.fdp.ConsumeIntInRange(lo, hi)

    def chance(self, p):
        return self.fdp.ConsumeProbability() < p


class Recorder:
    """Passes choices through and records them, so a case can be built again."""

    def __init__(self, source):
        self.source, self.log = source, []

    def int(self, lo, hi):
        self.log.append(self.source.int(lo, hi))
        return self.log[-1]

    def chance(self, p):
        self.log.append(self.source.chance(p))
        return self.log[-1]


class Replay:
    def __init__(self, log):
        self.it = iter(log)

    def int(self, lo, hi):
        return next(self.it)

    def chance(self, p):
        return next(self.it)


def pick(d, seq):
    return seq[d.int(0, len(seq) - 1)]


# ---- values -----------------------------------------------------------------

class BadBool:
    def __bool__(self):
        raise ValueError("BadBool has no truth value")


ODD_REALS = [float("nan"), float("inf"), float("-inf"), -1.0, -0.0, 1.0, 1.5, 1e308, 5e-324,
             2 ** 64, -(2 ** 70), 10 ** 400, True, False, np.float32(0.5), np.float64("nan"),
             np.int64(3), np.bool_(True), np.float16(0.25), "0.1", None, 1 + 0j,
             fractions.Fraction(1, 3), decimal.Decimal("0.1"), np.array(0.5), np.array([0.5])]
ODD_STEPS = [0, -1, 2 ** 53, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64, np.int64(7),
             np.uint64(2 ** 63 + 5), 3.0, True, "1", None]
FLAGS = [False, True, 0, 1, np.bool_(True), None, "no", np.array([1, 2]), BadBool()]
EPS_MODES = ["torch", "keras", np.str_("keras"), "Torch", "", None, b"torch", ["torch"]]
N_THREADS = [None, 1, 2, -1, -2, 0, -(10 ** 6), 10 ** 9, 2 ** 70, True, 1.0, np.int64(2), "2"]
BAD_DTYPES = [np.float16, np.int32, np.complex64, np.bool_, ">f4", ">f8", np.longdouble]


def real(d, lo, hi):
    """A value in [lo, hi) mostly (sometimes exactly lo), else an odd one (often invalid)."""
    if d.chance(0.85):
        return lo if d.chance(0.2) else lo + (hi - lo) * d.int(0, 999) / 1000
    return pick(d, ODD_REALS)


def hyper(d, amsgrad):
    """Adam's hyperparameters as functional.adam_step's keywords (less arrays)."""
    return dict(
        lr=real(d, 0.0, 1.0), beta1=real(d, 0.0, 1.0), beta2=real(d, 0.0, 1.0),
        eps=real(d, 0.0, 1e-3), weight_decay=real(d, 0.0, 0.1),
        step=d.int(1, 10 ** 6) if d.chance(0.85) else pick(d, ODD_STEPS),
        decoupled=d.chance(0.5) if d.chance(0.9) else pick(d, FLAGS),
        maximize=d.chance(0.5) if d.chance(0.9) else pick(d, FLAGS),
        eps_mode=pick(d, EPS_MODES[:2]) if d.chance(0.9) else pick(d, EPS_MODES),
        grad_scale=1.0 if d.chance(0.5) else real(d, 0.0, 2.0),
        amsgrad=amsgrad if d.chance(0.95) else pick(d, FLAGS))


# ---- arrays -----------------------------------------------------------------

class Arrays:
    """Makes arrays as views of raw byte buffers, and keeps every buffer."""

    def __init__(self, d):
        self.d = d
        self.rng = np.random.default_rng(d.int(0, 2 ** 32 - 1))
        self.buffers = []
        self.made = []

    def _view(self, dtype, shape, order, offset=0, stride=1):
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) if shape else 1
        raw = np.zeros((n * stride + 1) * dtype.itemsize + 64, np.uint8)
        self.buffers.append(raw)
        start = (-raw.__array_interface__["data"][0]) % 64 + offset
        flat = raw[start:start + n * stride * dtype.itemsize].view(dtype)[::stride]
        flat[...] = self._values(n, dtype)
        return flat.reshape(shape, order=order)

    def _values(self, n, dtype):
        x = self.rng.standard_normal(n) * 10.0 ** self.rng.integers(-3, 3, n)
        if self.d.chance(0.1):  # a few specials: the arithmetic must still agree
            x[self.rng.integers(0, n, 2) if n else []] = self.rng.choice(
                [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300])
        with np.errstate(all="ignore"):
            return x.astype(dtype)

    def template(self):
        """(dtype, shape, order) of a param: mostly valid, sometimes not."""
        d = self.d
        dtype = pick(d, [np.float32, np.float64]) if d.chance(0.9) else pick(d, BAD_DTYPES)
        if d.chance(0.03):
            shape = (d.int(16000, 70000),)  # above the parallel threshold
        else:
            shape = tuple(d.int(0, 4) for _ in range(d.int(0, 3)))
        return np.dtype(dtype), shape, pick(d, "CF")

    def like(self, template, positive=False):
        """An array matching template, or (sometimes) one mutation of it."""
        d = self.d
        dtype, shape, order = template
        kind = "good" if d.chance(0.85) else pick(d, [
            "dtype", "shape", "order", "strided", "unaligned", "readonly", "alias",
            "overlap", "not_array"])
        if kind == "alias" and self.made:
            return pick(d, self.made)
        if kind == "overlap" and self.made:
            other = pick(d, self.made)
            if isinstance(other, np.ndarray) and other.size:
                base = other.reshape(-1, order="A")
                k = d.int(0, base.size - 1)
                a = base[k:k + base.size].reshape(-1)
                self.made.append(a)
                return a
        if kind == "not_array":
            return pick(d, [None, 1.0, [1.0] * 3, memoryview(b"abcd")])
        if kind == "dtype":
            dtype = np.dtype(pick(d, [np.float32, np.float64] + BAD_DTYPES))
        if kind == "shape":
            shape = shape + (1,) if d.chance(0.5) else tuple(s + 1 for s in shape) or (2,)
        if kind == "order":
            order = "F" if order == "C" else "C"
            shape = shape if len(shape) >= 2 else (2, 3)
        a = self._view(dtype, shape, order,
                       offset=1 if kind == "unaligned" else 0,
                       stride=2 if kind == "strided" else 1)
        if positive and a.dtype.kind == "f":
            np.abs(a, out=a)
        if kind == "readonly":
            a.flags.writeable = False
        self.made.append(a)
        return a

    def tensor(self, amsgrad):
        """[param, grad, exp_avg, exp_avg_sq] (+ max_exp_avg_sq) for one tensor."""
        t = self.template()
        out = [self.like(t), self.like(t), self.like(t), self.like(t, positive=True)]
        return out + [self.like(t, positive=True)] if amsgrad else out


# ---- cases --------------------------------------------------------------------

def build(d):
    """(entry, C call, reference call, Arrays) for one case from choices d."""
    arrays = Arrays(d)
    entry = pick(d, ENTRIES)
    n_threads = None if d.chance(0.5) else pick(d, N_THREADS)
    if entry == "functional":
        p, g, m, v, *vmax = arrays.tensor(amsgrad=d.chance(0.3))
        kw = hyper(d, bool(vmax))
        del kw["amsgrad"]
        kw.update(max_exp_avg_sq=vmax[0] if vmax else None, n_threads=n_threads)
        return (entry, lambda: functional.adam_step(p, g, m, v, impl="c", **kw),
                lambda: functional.adam_step(p, g, m, v, impl="numpy", **kw), arrays)
    if entry == "plan":
        plan, grads, scale = plan_case(d, arrays)
        return (entry, lambda: KERNEL.run(plan, grads, scale, n_threads),
                lambda: reference.run(plan, grads, scale, n_threads), arrays)
    buckets = [bucket(d, arrays) for _ in range(d.int(0, 3))]
    return (entry, lambda: KERNEL.step_buckets(buckets, n_threads),
            lambda: reference.step_buckets(buckets, n_threads), arrays)


def bucket(d, arrays):
    """One Adam bucket (adamcore.plan.Bucket), sometimes malformed."""
    amsgrad = d.chance(0.3)
    tensors = [arrays.tensor(amsgrad) for _ in range(d.int(0, 3))]
    lists = [[t[j] for t in tensors] for j in range(4)]
    h = hyper(d, amsgrad)
    step, scale = h.pop("step"), h.pop("grad_scale")
    states = (lists[2], lists[3], [t[4] for t in tensors] if amsgrad else None)
    b = Bucket(kinds.ADAM, kinds.AdamHyper(**h), step, lists[0], lists[1], states,
               None if d.chance(0.3) else list(range(len(tensors))), scale)
    if d.chance(0.1):
        mutation = pick(d, ["short_list", "tuple_list", "states_list", "slot_tuple",
                            "short_indices", "hyper_dict", "kind_name", "first_int"])
        if mutation == "short_list" and tensors:
            setattr(b, pick(d, ["params", "grads"]), lists[d.int(0, 1)][:-1])
        elif mutation == "tuple_list":
            setattr(b, pick(d, ["params", "grads"]), tuple(lists[d.int(0, 1)]))
        elif mutation == "states_list":
            b.states = list(states)
        elif mutation == "slot_tuple":
            b.states = (tuple(lists[2]),) + states[1:]
        elif mutation == "short_indices" and b.indices:
            b.indices = b.indices[:-1]
        elif mutation == "hyper_dict":
            b.hyper = h
        elif mutation == "kind_name":
            b.kind = "adam"
        elif mutation == "first_int":
            b.first = 1
    return b


def plan_case(d, arrays):
    """An Adam plan of one group over random tensors, some of them stepped
    before (their step counts differ) or without state, and grads with None."""
    amsgrad = d.chance(0.3)
    tensors = [arrays.tensor(amsgrad) for _ in range(d.int(0, 4))]
    params = [t[0] if isinstance(t[0], np.ndarray) else arrays.like(arrays.template())
              for t in tensors]
    params = [p if isinstance(p, np.ndarray) else np.zeros(1) for p in params]
    h = hyper(d, amsgrad)
    step, scale = h.pop("step"), h.pop("grad_scale")
    h["amsgrad"] = amsgrad  # options whose slots the plan is built with
    group = {"params": params, "lr": h["lr"], "betas": (h["beta1"], h["beta2"]),
             "eps": h["eps"], "weight_decay": h["weight_decay"], "amsgrad": amsgrad,
             "maximize": h["maximize"], "decoupled_weight_decay": h["decoupled"],
             "eps_mode": h["eps_mode"]}
    state = []
    for t in tensors:
        st = {"exp_avg": t[2], "exp_avg_sq": t[3], **({"max_exp_avg_sq": t[4]} if amsgrad else {})}
        state.append(None if d.chance(0.15) else st)
    top = min(step, 2 ** 63 - 1) if type(step) is int and step > 0 else 1
    steps = [d.int(0, 5) if d.chance(0.5) else top for _ in tensors]
    plan = Plan.build(kinds.ADAM, [group], state, np.array(steps, np.int64))
    grads = [None if d.chance(0.2) else t[1] for t in tensors]
    return plan, grads, scale


# ---- the invariant ----------------------------------------------------------

def outcome(call):
    """None on success, else (exception type name, message). Which pair of
    overlapping buffers is named depends on their addresses, which differ
    between the two builds of a case, so those messages lose the names."""
    try:
        with np.errstate(all="ignore"):
            call()
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, re.sub(r"^\S+ overlaps \S+ in memory", "_ overlaps _ in memory",
                                          str(exc))
    return None


def same_values(a, b):
    """Bitwise equal, except that any NaN matches any NaN (the C kernel and
    NumPy may propagate different NaN payloads)."""
    if a.dtype.kind != "f" or a.dtype.itemsize not in (2, 4, 8):  # never stepped
        return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    a_nan, b_nan = np.isnan(a), np.isnan(b)
    uint = np.dtype(f"u{a.dtype.itemsize}")
    return (np.array_equal(a_nan, b_nan) and np.array_equal(
        np.where(a_nan, 0, a).astype(a.dtype).view(uint), np.where(b_nan, 0, b).astype(b.dtype).view(uint)))


def check(source):
    """Run one case from ``source``; raise AssertionError if the invariant fails.
    Returns the outcome: "ok" or the exception type name."""
    rec = Recorder(source)
    entry, c_call, _, c_arrays = build(rec)
    _, _, ref_call, ref_arrays = build(Replay(rec.log))
    c_bufs, ref_bufs = c_arrays.buffers, ref_arrays.buffers
    c_before, ref_before = [b.copy() for b in c_bufs], [b.copy() for b in ref_bufs]
    try:
        c_out = outcome(c_call)
    except Exception as exc:
        raise AssertionError(f"{entry}: the C binding raised {type(exc).__name__}: {exc}") from exc
    try:
        ref_out = outcome(ref_call)
    except Exception as exc:
        raise AssertionError(f"{entry}: the reference raised {type(exc).__name__}: {exc}") from exc
    assert c_out == ref_out, f"{entry}: C gave {c_out!r}, the reference {ref_out!r}"
    if c_out is not None:
        for k, (b, old) in enumerate(zip(c_bufs, c_before)):
            assert np.array_equal(b, old), f"{entry}: C refused ({c_out}) but wrote buffer {k}"
        for k, (b, old) in enumerate(zip(ref_bufs, ref_before)):
            assert np.array_equal(b, old), (
                f"{entry}: the reference refused ({ref_out}) but wrote buffer {k}")
        return c_out[0]
    for k, (a, r) in enumerate(zip(c_arrays.made, ref_arrays.made)):
        assert same_values(a, r), f"{entry}: C and the reference differ in array {k}"
    return "ok"


# ---- drivers ------------------------------------------------------------------

def run_plain(seed, seconds, iterations):
    """Cases seed, seed+1, ... until the time or the count runs out; prints a
    summary line. A failure names its seed: rerun with --seed S --iterations 1."""
    counts = {}
    start = time.monotonic()
    i = 0
    while i < iterations and time.monotonic() - start < seconds:
        try:
            kind = check(RandomChoices(seed + i))
        except AssertionError as exc:
            raise AssertionError(f"case seed {seed + i}: {exc}") from exc
        counts[kind] = counts.get(kind, 0) + 1
        i += 1
    print(f"fuzz_binding: {i} cases in {time.monotonic() - start:.1f} s, "
          + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


def run_atheris(argv):
    def one_input(data):
        check(AtherisChoices(atheris.FuzzedDataProvider(data)))

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", action="store_true", help="seeded random cases, no atheris")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--iterations", type=int, default=10 ** 9)
    args, rest = parser.parse_known_args()
    if KERNEL is None:
        sys.exit("fuzz_binding: the compiled extension adamcore._kernel is not built")
    if args.plain:
        run_plain(args.seed, args.seconds, args.iterations)
    else:
        run_atheris([sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
