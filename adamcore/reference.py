"""Pure-NumPy Adam: the fallback when the extension is missing, and the oracle
the C kernel is tested against.

It performs the very operations of ``csrc/adam_body.h`` in the very same order,
each a single IEEE-rounded NumPy ufunc on the element dtype, in place with two
scratch buffers, so the C kernel equals it bit for bit. The per-step scalars
are computed in double exactly as ``csrc/adam_step.c`` does.
"""

import math

import numpy as np

from adamcore import _validate


def adam_scalars(lr, beta1, beta2, eps, weight_decay, step, eps_mode, dtype, grad_scale=1.0):
    """Per-step scalars in double, cast once to ``dtype`` (see adam_step.c)."""
    lr, beta1, beta2 = float(lr), float(beta1), float(beta2)
    bc1 = 1.0 - beta1 ** int(step)
    bc2 = 1.0 - beta2 ** int(step)
    if eps_mode == "keras":
        step_size, dscale = lr * math.sqrt(bc2) / bc1, 1.0
    else:
        step_size, dscale = lr / bc1, 1.0 / math.sqrt(bc2)
    t = np.dtype(dtype).type
    return {
        "b1": t(beta1), "omb1": t(1.0 - beta1), "b2": t(beta2), "omb2": t(1.0 - beta2),
        "eps": t(eps), "dscale": t(dscale), "step_size": t(step_size),
        "wd": t(weight_decay), "decay": t(1.0 - lr * float(weight_decay)),
        "gscale": t(grad_scale),
    }


def _flat(a):
    # A contiguous array in memory order, as a view (the C kernel's view of it).
    return a.reshape(-1, order="A")


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


def make_scratch(dtype, n):
    return (np.empty(n, dtype), np.empty(n, dtype))


def adam_step_buckets(buckets, n_threads=None, scratch=None):
    """Step every bucket (see adamcore._validate) after validating all of them.

    ``scratch`` maps a dtype to a pair of scratch buffers, grown as needed and
    kept by the caller between steps; ``n_threads`` is checked and ignored.
    """
    _validate.check_buckets(buckets, n_threads)
    scratch = {} if scratch is None else scratch
    for params, grads, exp_avgs, exp_avg_sqs, vmaxs, _, hyper in buckets:
        (lr, beta1, beta2, eps, weight_decay, step, decoupled, maximize, eps_mode,
         grad_scale) = hyper
        if not params:
            continue
        dtype = params[0].dtype
        n = max(p.size for p in params)
        if dtype not in scratch or scratch[dtype][0].size < n:
            scratch[dtype] = make_scratch(dtype, n)
        s = adam_scalars(lr, beta1, beta2, eps, weight_decay, step, eps_mode, dtype, grad_scale)
        wd_mode = None if float(weight_decay) == 0.0 else ("decoupled" if decoupled else "coupled")
        for k, param in enumerate(params):
            vmax = None if vmaxs is None else vmaxs[k]
            adam_update(param, grads[k], exp_avgs[k], exp_avg_sqs[k], vmax, s,
                        maximize=bool(maximize), wd_mode=wd_mode, scratch=scratch[dtype])


def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1, beta2, eps,
              weight_decay=0.0, decoupled=False, max_exp_avg_sq=None, maximize=False,
              eps_mode="torch", grad_scale=1.0, n_threads=None):
    """One Adam step of one array, in place, in pure NumPy.

    The same signature and results as ``adamcore.functional.adam_step`` (less
    ``impl``); see there for the algorithm. ``n_threads`` is checked, then
    ignored: NumPy runs on one thread.
    """
    hyper = (lr, beta1, beta2, eps, weight_decay, step, decoupled, maximize, eps_mode,
             grad_scale)
    vmaxs = None if max_exp_avg_sq is None else [max_exp_avg_sq]
    adam_step_buckets([([param], [grad], [exp_avg], [exp_avg_sq], vmaxs, None, hyper)], n_threads)


NORM_BLOCK = 2048  # csrc/adamcore.h: ADAMCORE_NORM_BLOCK
_LANES = 16


def grad_sumsq(arrays):
    """(sum of squares in double, any element NaN or inf) of arrays of one
    dtype, with csrc/grad_norm.c's very additions: per block of NORM_BLOCK
    elements, 16 lanes summed row by row, the lanes combined pairwise, the
    block sums added in order. Bitwise equal to the kernel. Blocks are padded
    with zeros, which is exact: every lane sum is a sum of squares (>= +0)."""
    total = 0.0
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
            for s in acc[:, 0].tolist():  # block order
                total += s
    nonfinite = not math.isfinite(total) and not all(np.isfinite(a).all() for a in arrays)
    return total, nonfinite


# ---- the optimizer family (csrc/family_body.h) ------------------------------

def adabelief_rectified(h):
    """(step_size, dscale, no_denominator) of AdaBelief's rectified step, in
    double (csrc/family_step.c: rectified)."""
    t, beta1, beta2 = int(h["step"]), float(h["beta1"]), float(h["beta2"])
    b2t = beta2 ** t
    bc1 = 1.0 - beta1 ** t
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho = rho_inf - 2.0 * float(t) * b2t / (1.0 - b2t)
    if rho >= 5.0:
        return (float(h["lr"]) * math.sqrt((1.0 - b2t) * (rho - 4.0) / (rho_inf - 4.0) * (rho - 2.0)
                                           / rho * rho_inf / (rho_inf - 2.0)) / bc1, 1.0, False)
    return float(h["lr"]) / bc1, 1.0, True


def family_scalars(h, dtype):
    """Per-step scalars of a family hyper dict in double, cast once to
    ``dtype`` (see csrc/family_step.c: family_scalars)."""
    lr, grad_scale = float(h["lr"]), float(h["grad_scale"])
    s = {"gscale": -grad_scale if h["maximize"] else grad_scale, "lr": lr,
         "wd": float(h["weight_decay"]), "mom": float(h["momentum"]),
         "omd": 1.0 - float(h["dampening"]), "alpha": float(h["alpha"]),
         "oma": 1.0 - float(h["alpha"]), "eps": float(h["eps"])}
    step = int(h["step"])
    if h["kind"] == "adagrad":
        s["lr"] = lr / (1.0 + float(step - 1) * float(h["lr_decay"]))
    if h["kind"] == "adabelief":
        beta1, beta2 = float(h["beta1"]), float(h["beta2"])
        bc1, bc2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
        s.update(b1=beta1, omb1=1.0 - beta1, b2=beta2, omb2=1.0 - beta2,
                 dscale=1.0 / math.sqrt(bc2), step_size=lr / bc1,
                 decay=1.0 - lr * float(h["weight_decay"]))
        if h["rectify"]:
            s["step_size"], s["dscale"], _ = adabelief_rectified(h)
    t = np.dtype(dtype).type
    return {k: t(v) for k, v in s.items()}


def family_update(h, param, grad, states, s, scratch):
    """One family update of already-validated arrays, in place: the
    operations of csrc/family_body.h in its order. ``states`` are the kind's
    3 slots (arrays or None), ``s`` is from ``family_scalars``, ``scratch``
    three 1-D arrays of the dtype, at least as long."""
    p, g = _flat(param), _flat(grad)
    s0, s1, s2 = (None if a is None else _flat(a) for a in states)
    n = p.size
    t1, t2, t3 = (a[:n] for a in scratch)
    np.multiply(g, s["gscale"], out=t1)                # g = g * gscale
    g = t1
    kind = h["kind"]
    if float(h["weight_decay"]) != 0.0 and not (kind == "adabelief" and h["decoupled"]):
        np.multiply(p, s["wd"], out=t2)                # g = g + wd*p
        np.add(g, t2, out=g)
    if kind == "sgd":
        if s0 is not None:
            if h["first"]:
                np.copyto(s0, g)                       # buf = g
            else:
                np.multiply(s0, s["mom"], out=s0)      # buf = mom*buf + (1-dampening)*g
                np.multiply(g, s["omd"], out=t2)
                np.add(s0, t2, out=s0)
            if h["nesterov"]:
                np.multiply(s0, s["mom"], out=t2)      # g = g + mom*buf
                np.add(g, t2, out=g)
            else:
                g = s0                                 # g = buf
        np.multiply(g, s["lr"], out=t2)                # p = p - lr*g
        np.subtract(p, t2, out=p)
    elif kind == "rmsprop":
        np.multiply(s0, s["alpha"], out=s0)            # sq = alpha*sq + (1-alpha)*(g*g)
        np.multiply(g, g, out=t2)
        np.multiply(t2, s["oma"], out=t2)
        np.add(s0, t2, out=s0)
        if s2 is not None:
            np.subtract(g, s2, out=t2)                 # ga = ga + (1-alpha)*(g - ga)
            np.multiply(t2, s["oma"], out=t2)
            np.add(s2, t2, out=s2)
            np.multiply(s2, s2, out=t2)                # avg = sqrt(sq - ga*ga) + eps
            np.subtract(s0, t2, out=t2)
            np.sqrt(t2, out=t2)
        else:
            np.sqrt(s0, out=t2)                        # avg = sqrt(sq) + eps
        np.add(t2, s["eps"], out=t2)
        np.divide(g, t2, out=t2)                       # g/avg
        if s1 is not None:
            np.multiply(s1, s["mom"], out=s1)          # buf = mom*buf + g/avg
            np.add(s1, t2, out=s1)
            np.multiply(s1, s["lr"], out=t2)           # p = p - lr*buf
        else:
            np.multiply(t2, s["lr"], out=t2)           # p = p - lr*(g/avg)
        np.subtract(p, t2, out=p)
    elif kind == "adagrad":
        np.multiply(g, g, out=t2)                      # sum = sum + g*g
        np.add(s0, t2, out=s0)
        np.sqrt(s0, out=t2)                            # p = p - clr*(g/(sqrt(sum) + eps))
        np.add(t2, s["eps"], out=t2)
        np.divide(g, t2, out=t2)
        np.multiply(t2, s["lr"], out=t2)
        np.subtract(p, t2, out=p)
    else:  # adabelief
        np.multiply(s0, s["b1"], out=s0)               # m = b1*m + (1-b1)*g
        np.multiply(g, s["omb1"], out=t2)
        np.add(s0, t2, out=s0)
        np.subtract(g, s0, out=t3)                     # r = g - m
        np.multiply(t3, t3, out=t3)                    # s = (b2*s + (1-b2)*(r*r)) + eps
        np.multiply(t3, s["omb2"], out=t3)
        np.multiply(s1, s["b2"], out=s1)
        np.add(s1, t3, out=s1)
        np.add(s1, s["eps"], out=s1)
        v = s1
        if s2 is not None:                             # smax = maximum(smax, s)
            np.maximum(s2, s1, out=s2)
            v = s2
        if h["decoupled"] and float(h["weight_decay"]) != 0.0:
            np.multiply(p, s["decay"], out=p)          # p = p * (1 - lr*wd)
        if h["rectify"] and adabelief_rectified(h)[2]:
            np.multiply(s0, s["step_size"], out=t3)    # p = p - step_size*m
        else:
            np.sqrt(v, out=t3)                         # denom = sqrt(s)*dscale + eps
            np.multiply(t3, s["dscale"], out=t3)
            np.add(t3, s["eps"], out=t3)
            np.divide(s0, t3, out=t3)                  # p = p - step_size*(m/denom)
            np.multiply(t3, s["step_size"], out=t3)
        np.subtract(p, t3, out=p)


def family_step_buckets(buckets, n_threads=None, scratch=None):
    """Step every family bucket (see adamcore._validate) after validating all
    of them; ``scratch`` as for ``adam_step_buckets`` (three buffers)."""
    _validate.check_family_buckets(buckets, n_threads)
    scratch = {} if scratch is None else scratch
    for params, grads, states, _, h in buckets:
        if not params:
            continue
        dtype = params[0].dtype
        n = max(p.size for p in params)
        key = ("family", dtype)
        if key not in scratch or scratch[key][0].size < n:
            scratch[key] = tuple(np.empty(n, dtype) for _ in range(3))
        s = family_scalars(h, dtype)
        for k, param in enumerate(params):
            slots = tuple(None if a is None else a[k] for a in states)
            family_update(h, param, grads[k], slots, s, scratch[key])
