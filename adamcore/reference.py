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
