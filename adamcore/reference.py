"""Pure-NumPy steps: the fallback when the extension is missing, and the
oracle the C kernel is tested against.

It performs the very operations of ``csrc/adam_body.h`` and
``csrc/family_body.h`` in the very same order, each a single IEEE-rounded
NumPy ufunc on the element dtype, in place with scratch buffers, so the C
kernel equals it bit for bit. The per-step scalars are computed in double
exactly as ``csrc/adam_step.c`` and ``csrc/family_step.c`` do. One function
per kind steps one bucket (adamcore.plan.Bucket); ``step_buckets`` and
``run`` have the signatures of the binding's (adamcore._kernel), and
``functional.adam_step(..., impl="numpy")`` steps one array through them.
"""

import math

import numpy as np

from adamcore import _validate, qstate
from adamcore.plan import check_buckets
from adamcore.rowgrad import RowGrad

def adam_scalars(hyper, step, grad_scale, dtype):
    """Per-step scalars in double, cast once to ``dtype`` (see adam_step.c)."""
    lr, beta1, beta2 = float(hyper.lr), float(hyper.beta1), float(hyper.beta2)
    bc1 = 1.0 - beta1 ** int(step)
    bc2 = 1.0 - beta2 ** int(step)
    if hyper.eps_mode == "keras":
        step_size, dscale = lr * math.sqrt(bc2) / bc1, 1.0
    else:
        step_size, dscale = lr / bc1, 1.0 / math.sqrt(bc2)
    t = np.dtype(dtype).type
    return {
        "b1": t(beta1), "omb1": t(1.0 - beta1), "b2": t(beta2), "omb2": t(1.0 - beta2),
        "eps": t(hyper.eps), "dscale": t(dscale), "step_size": t(step_size),
        "wd": t(hyper.weight_decay), "decay": t(1.0 - lr * float(hyper.weight_decay)),
        "gscale": t(grad_scale),
    }


def _flat(a):
    # A contiguous array in memory order, as a view (the C kernel's view of it).
    return a.reshape(-1, order="A")


def _scratch(scratch, bucket, count):
    """``count`` 1-D buffers of the bucket's dtype, as long as its largest
    tensor, kept in ``scratch`` between calls and grown as needed."""
    dtype = bucket.params[0].dtype
    n = max(p.size for p in bucket.params)
    key = (count, dtype)
    if key not in scratch or scratch[key][0].size < n:
        scratch[key] = tuple(np.empty(n, dtype) for _ in range(count))
    return scratch[key]


def adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s, *, maximize,
                wd_mode, scratch):
    """One Adam update of already-validated arrays, in place.

    ``s`` is from ``adam_scalars``; ``wd_mode`` is None, "coupled" or
    "decoupled"; ``scratch`` is two 1-D arrays of the dtype, at least as long.
    """
    p, m, v = _flat(param), _flat(exp_avg), _flat(exp_avg_sq)
    g = _flat(grad)
    n = p.size
    s1, s2 = scratch[0][:n], scratch[1][:n]
    np.multiply(g, s["gscale"], out=s1)            # g = g * grad_scale
    g = s1
    if maximize:
        np.negative(g, out=g)                      # g = -g
    if wd_mode == "coupled":
        np.multiply(p, s["wd"], out=s2)            # g = g + wd*p
        np.add(g, s2, out=g)
    np.multiply(m, s["b1"], out=m)                 # m = b1*m + (1-b1)*g
    np.multiply(g, s["omb1"], out=s2)
    np.add(m, s2, out=m)
    np.multiply(g, g, out=s2)                      # v = b2*v + (1-b2)*(g*g)
    np.multiply(s2, s["omb2"], out=s2)
    np.multiply(v, s["b2"], out=v)
    np.add(v, s2, out=v)
    vhat = v
    if max_exp_avg_sq is not None:                 # vmax = maximum(vmax, v)
        vhat = _flat(max_exp_avg_sq)
        np.maximum(vhat, v, out=vhat)
    np.sqrt(vhat, out=s1)                          # denom = sqrt(v)*dscale + eps
    np.multiply(s1, s["dscale"], out=s1)
    np.add(s1, s["eps"], out=s1)
    if wd_mode == "decoupled":
        np.multiply(p, s["decay"], out=p)          # p = p * (1 - lr*wd)
    np.divide(m, s1, out=s1)                       # p = p - step_size*(m/denom)
    np.multiply(s1, s["step_size"], out=s1)
    np.subtract(p, s1, out=p)


def adam_lowp_update(param, grad, states, scales, s, *, fmt, key, maximize, wd_mode):
    """One Adam update with bfloat16 or int8 state (csrc/lowp_body.h, whose
    docstring has the rules), in place: ``states`` the (m, v, vmax or None)
    arrays, ``scales`` their absmax arrays (int8) and ``key`` the call key
    (bfloat16: adamcore.qstate.call_key). The same operations in the same
    order as adam_update, on new arrays."""
    p, g = _flat(param), _flat(grad)
    m, v, vmax = (None if a is None else _flat(a) for a in states)
    dtype = p.dtype
    with np.errstate(all="ignore"):  # NaN and inf propagate, as in the kernel
        gi = g * s["gscale"]
        if maximize:
            gi = -gi
        if wd_mode == "coupled":
            gi = gi + s["wd"] * p
        if fmt is qstate.BF16:
            m_old, v_old = (qstate.bf16_value(a.view(np.uint16)).astype(dtype) for a in (m, v))
        else:
            m_old = qstate.decode(m, scales[0], True).astype(dtype)
            v_old = qstate.decode(v, scales[1], False).astype(dtype)
        mi = s["b1"] * m_old + s["omb1"] * gi
        vi = s["b2"] * v_old + s["omb2"] * (gi * gi)
        vhat = vi
        if fmt is qstate.BF16:
            r = qstate.element_bits(key, p.size)
            m_bits = qstate.bf16_round(mi.astype(np.float32), r >> np.uint32(16))
            v_bits = qstate.bf16_round(vi.astype(np.float32), r & np.uint32(0xFFFF))
            if vmax is not None:  # the larger stored value; NaN propagates, a tie gives v
                old = vmax.view(np.uint16)
                mx, vs = qstate.bf16_value(old), qstate.bf16_value(v_bits)
                keep = (mx > vs) | np.isnan(mx)
                vmax.view(np.uint16)[:] = np.where(keep, old, v_bits)
                vhat = np.where(keep, mx, vs).astype(dtype)
            m.view(np.uint16)[:] = m_bits
            v.view(np.uint16)[:] = v_bits
        else:
            if vmax is not None:
                xo = qstate.decode(vmax, scales[2], False).astype(dtype)
                vhat = np.where((xo > vi) | np.isnan(xo), xo, vi)
            for a, x, absmax, signed in ((m, mi, scales[0], True), (v, vi, scales[1], False),
                                         (vmax, vhat, scales[2], False)):
                if a is not None:
                    a[:], absmax[:] = qstate.quantize(x.astype(np.float32), signed)
        denom = np.sqrt(vhat) * s["dscale"] + s["eps"]
        pi = p * s["decay"] if wd_mode == "decoupled" else p
        p[:] = pi - s["step_size"] * (mi / denom)


def adam(bucket, scratch):
    """Step one validated Adam bucket (adamcore.kinds.ADAM)."""
    h = bucket.hyper
    s = adam_scalars(h, bucket.step, bucket.grad_scale, bucket.params[0].dtype)
    wd_mode = (None if float(h.weight_decay) == 0.0
               else ("decoupled" if h.decoupled else "coupled"))
    if bucket.fmt != qstate.NATIVE.code:
        fmt = next(f for f in qstate.FORMATS.values() if f.code == bucket.fmt)
        for k, param in enumerate(bucket.params):
            states = tuple(None if lst is None else lst[k] for lst in bucket.states)
            scales = tuple(None if lst is None else lst[k] for lst in bucket.scales or (None,) * 3)
            key = qstate.call_key(bucket.seeds[k], bucket.step) if bucket.seeds else 0
            adam_lowp_update(param, bucket.grads[k], states, scales, s, fmt=fmt, key=key,
                             maximize=bool(h.maximize), wd_mode=wd_mode)
        return
    buffers = _scratch(scratch, bucket, 2)
    ms, vs, vmaxs = bucket.states
    for k, param in enumerate(bucket.params):
        adam_update(param, bucket.grads[k], ms[k], vs[k], None if vmaxs is None else vmaxs[k],
                    s, maximize=bool(h.maximize), wd_mode=wd_mode, scratch=buffers)


def step_buckets(buckets, n_threads=None, scratch=None):
    """Step every bucket (adamcore.plan.Bucket) after validating all of them.

    ``scratch`` holds reusable buffers between calls (a dict the caller
    keeps); ``n_threads`` is checked and ignored: NumPy runs on one thread.
    """
    check_buckets(buckets, n_threads)
    scratch = {} if scratch is None else scratch
    for bucket in buckets:
        if bucket.params:
            bucket.kind.reference(bucket, scratch)


def run(plan, grads, scale, n_threads=None):
    """Step ``plan`` (adamcore.plan.Plan) with ``grads`` (one per param, None
    to skip) scaled by ``scale``, under the plan's contract; False, with
    nothing done, when the plan does not cover this step."""
    # In the binding's order: grads, scale, n_threads, hyperparameters, tensors.
    if type(grads) is not list or len(grads) != plan.n_params:
        raise TypeError(f"grads must be a list of {plan.n_params} arrays or None")
    _validate.check_grad_scale(scale)
    _validate.check_n_threads(n_threads)
    if any(type(g) is RowGrad for g in grads):  # stepped by adamcore.rows, not a run
        return False
    buckets = plan.buckets(grads, scale)
    if buckets is None:
        return False
    step_buckets(buckets, n_threads, plan.scratch)
    plan.advance({i for i, g in enumerate(grads) if g is not None})
    return True


NORM_BLOCK = 2048  # csrc/adamcore.h: ADAMCORE_NORM_BLOCK
_LANES = 16


def grad_block_sums(arrays):
    """(block sums, any element NaN or inf): csrc/grad_norm.c's very additions
    per block of NORM_BLOCK elements (16 lanes summed row by row, the lanes
    combined pairwise), one float64 sum per block, the arrays' blocks in
    order. Bitwise equal to the kernel's. Blocks are padded with zeros, which
    is exact: every lane sum is a sum of squares (>= +0)."""
    sums = []
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are reported
        for a in arrays:
            x = _flat(a)
            n_blocks = -(-x.size // NORM_BLOCK)
            padded = np.zeros(n_blocks * NORM_BLOCK)
            padded[:x.size] = x
            rows = padded.reshape(n_blocks, NORM_BLOCK // _LANES, _LANES)
            acc = np.zeros((n_blocks, _LANES))
            for r in range(rows.shape[1]):  # row order, as the kernel's loop
                acc += rows[:, r] * rows[:, r]
            w = _LANES // 2
            while w >= 1:
                acc[:, :w] += acc[:, w:2 * w]
                w //= 2
            sums.append(acc[:, 0])
    sums = np.concatenate(sums) if sums else np.zeros(0)
    nonfinite = not np.isfinite(sums).all() and not all(np.isfinite(a).all() for a in arrays)
    return sums, nonfinite


def fold_block_sums(sums):
    """The block sums added one at a time in block order, as the kernel adds
    them (a Python float loop: NumPy's sum is pairwise)."""
    total = 0.0
    for s in sums.tolist():
        total += s
    return total


def grad_sumsq(arrays):
    """(sum of squares in double, any element NaN or inf) of arrays of one
    dtype, bitwise equal to the kernel: the block sums added in order."""
    sums, nonfinite = grad_block_sums(arrays)
    return fold_block_sums(sums), nonfinite


def rank_sum(recv, out, scale):
    """csrc/rank_sum.c: out = (recv[0, :n] + recv[1, :n] + ..., in row order)
    * scale in recv's dtype, n = out.size, one addition at a time."""
    n = out.size
    np.copyto(out, recv[0, :n])
    for row in recv[1:]:
        np.add(out, row[:n], out=out)
    if scale != 1.0:
        np.multiply(out, out.dtype.type(scale), out=out)


# ---- the optimizer family (csrc/family_body.h) ------------------------------

def adabelief_rectified(h, step):
    """(step_size, dscale, no_denominator) of AdaBelief's rectified step, in
    double (csrc/family_step.c: rectified)."""
    t, beta1, beta2 = int(step), float(h.beta1), float(h.beta2)
    b2t = beta2 ** t
    bc1 = 1.0 - beta1 ** t
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho = rho_inf - 2.0 * float(t) * b2t / (1.0 - b2t)
    if rho >= 5.0:
        return (float(h.lr) * math.sqrt((1.0 - b2t) * (rho - 4.0) / (rho_inf - 4.0) * (rho - 2.0)
                                        / rho * rho_inf / (rho_inf - 2.0)) / bc1, 1.0, False)
    return float(h.lr) / bc1, 1.0, True


def family_scalars(bucket):
    """Per-step scalars of a family bucket in double, cast once to its dtype
    (see csrc/family_step.c: family_scalars)."""
    h, kind, step = bucket.hyper, bucket.kind.name, int(bucket.step)
    lr, grad_scale = float(h.lr), float(bucket.grad_scale)
    get = lambda name: float(getattr(h, name, 0.0))  # noqa: E731 (a field the kind lacks: 0)
    s = {"gscale": -grad_scale if h.maximize else grad_scale, "lr": lr,
         "wd": get("weight_decay"), "mom": get("momentum"), "omd": 1.0 - get("dampening"),
         "alpha": get("alpha"), "oma": 1.0 - get("alpha"), "eps": get("eps")}
    if kind == "adagrad":
        s["lr"] = lr / (1.0 + float(step - 1) * float(h.lr_decay))
    if kind == "adabelief":
        beta1, beta2 = float(h.beta1), float(h.beta2)
        bc1, bc2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
        s.update(b1=beta1, omb1=1.0 - beta1, b2=beta2, omb2=1.0 - beta2,
                 dscale=1.0 / math.sqrt(bc2), step_size=lr / bc1,
                 decay=1.0 - lr * float(h.weight_decay))
        if h.rectify:
            s["step_size"], s["dscale"], _ = adabelief_rectified(h, step)
    t = bucket.params[0].dtype.type
    return {k: t(v) for k, v in s.items()}


def _family(update):
    """A kind's bucket function from its per-tensor ``update``: scalars once,
    then each tensor with the kind's 3 slots and 3 scratch buffers."""
    def step(bucket, scratch):
        s = family_scalars(bucket)
        buffers = _scratch(scratch, bucket, 3)
        for k, param in enumerate(bucket.params):
            slots = tuple(None if a is None else _flat(a[k]) for a in bucket.states)
            n = param.size
            update(bucket, _flat(param), _flat(bucket.grads[k]), slots, s,
                   tuple(b[:n] for b in buffers))
    step.__name__ = step.__qualname__ = update.__name__[1:-len("_update")]
    step.__doc__ = f"Step one validated {step.__name__} bucket (adamcore.kinds)."
    return step


def _grad_in(bucket, p, g, s, t1, t2, decoupled=False):
    """g = g * gscale (maximize folded into the sign), then L2 weight decay."""
    np.multiply(g, s["gscale"], out=t1)                # g = g * gscale
    if float(bucket.hyper.weight_decay) != 0.0 and not decoupled:
        np.multiply(p, s["wd"], out=t2)                # g = g + wd*p
        np.add(t1, t2, out=t1)
    return t1


def _sgd_update(bucket, p, g, states, s, scratch):
    t1, t2, _ = scratch
    g = _grad_in(bucket, p, g, s, t1, t2)
    s0 = states[0]
    if s0 is not None:
        if bucket.first:
            np.copyto(s0, g)                           # buf = g
        else:
            np.multiply(s0, s["mom"], out=s0)          # buf = mom*buf + (1-dampening)*g
            np.multiply(g, s["omd"], out=t2)
            np.add(s0, t2, out=s0)
        if bucket.hyper.nesterov:
            np.multiply(s0, s["mom"], out=t2)          # g = g + mom*buf
            np.add(g, t2, out=g)
        else:
            g = s0                                     # g = buf
    np.multiply(g, s["lr"], out=t2)                    # p = p - lr*g
    np.subtract(p, t2, out=p)


def _rmsprop_update(bucket, p, g, states, s, scratch):
    t1, t2, _ = scratch
    g = _grad_in(bucket, p, g, s, t1, t2)
    s0, s1, s2 = states
    np.multiply(s0, s["alpha"], out=s0)                # sq = alpha*sq + (1-alpha)*(g*g)
    np.multiply(g, g, out=t2)
    np.multiply(t2, s["oma"], out=t2)
    np.add(s0, t2, out=s0)
    if s2 is not None:
        np.subtract(g, s2, out=t2)                     # ga = ga + (1-alpha)*(g - ga)
        np.multiply(t2, s["oma"], out=t2)
        np.add(s2, t2, out=s2)
        np.multiply(s2, s2, out=t2)                    # avg = sqrt(sq - ga*ga) + eps
        np.subtract(s0, t2, out=t2)
        np.sqrt(t2, out=t2)
    else:
        np.sqrt(s0, out=t2)                            # avg = sqrt(sq) + eps
    np.add(t2, s["eps"], out=t2)
    np.divide(g, t2, out=t2)                           # g/avg
    if s1 is not None:
        np.multiply(s1, s["mom"], out=s1)              # buf = mom*buf + g/avg
        np.add(s1, t2, out=s1)
        np.multiply(s1, s["lr"], out=t2)               # p = p - lr*buf
    else:
        np.multiply(t2, s["lr"], out=t2)               # p = p - lr*(g/avg)
    np.subtract(p, t2, out=p)


def _adagrad_update(bucket, p, g, states, s, scratch):
    t1, t2, _ = scratch
    g = _grad_in(bucket, p, g, s, t1, t2)
    s0 = states[0]
    np.multiply(g, g, out=t2)                          # sum = sum + g*g
    np.add(s0, t2, out=s0)
    np.sqrt(s0, out=t2)                                # p = p - clr*(g/(sqrt(sum) + eps))
    np.add(t2, s["eps"], out=t2)
    np.divide(g, t2, out=t2)
    np.multiply(t2, s["lr"], out=t2)
    np.subtract(p, t2, out=p)


def _adabelief_update(bucket, p, g, states, s, scratch):
    t1, t2, t3 = scratch
    h = bucket.hyper
    g = _grad_in(bucket, p, g, s, t1, t2, decoupled=h.decoupled)
    s0, s1, s2 = states
    np.multiply(s0, s["b1"], out=s0)                   # m = b1*m + (1-b1)*g
    np.multiply(g, s["omb1"], out=t2)
    np.add(s0, t2, out=s0)
    np.subtract(g, s0, out=t3)                         # r = g - m
    np.multiply(t3, t3, out=t3)                        # s = (b2*s + (1-b2)*(r*r)) + eps
    np.multiply(t3, s["omb2"], out=t3)
    np.multiply(s1, s["b2"], out=s1)
    np.add(s1, t3, out=s1)
    np.add(s1, s["eps"], out=s1)
    v = s1
    if s2 is not None:                                 # smax = maximum(smax, s)
        np.maximum(s2, s1, out=s2)
        v = s2
    if h.decoupled and float(h.weight_decay) != 0.0:
        np.multiply(p, s["decay"], out=p)              # p = p * (1 - lr*wd)
    if h.rectify and adabelief_rectified(h, bucket.step)[2]:
        np.multiply(s0, s["step_size"], out=t3)        # p = p - step_size*m
    else:
        np.sqrt(v, out=t3)                             # denom = sqrt(s)*dscale + eps
        np.multiply(t3, s["dscale"], out=t3)
        np.add(t3, s["eps"], out=t3)
        np.divide(s0, t3, out=t3)                      # p = p - step_size*(m/denom)
        np.multiply(t3, s["step_size"], out=t3)
    np.subtract(p, t3, out=p)


sgd, rmsprop, adagrad, adabelief = (_family(f) for f in (_sgd_update, _rmsprop_update,
                                                          _adagrad_update, _adabelief_update))
