"""Row gradients: the gradient of an embedding table as the rows that changed.

    opt = adamcore.SparseAdam([table])                 # or Adam([table], lazy=True), or Adam
    opt.step([adamcore.RowGrad(indices, rows)])       # rows[k] is the gradient of table[indices[k]]

An N x D table looked up K times per step has a gradient of K rows, an index
repeated for every lookup that hit it. Stepping those rows instead of the
whole table moves ~28*K*D bytes instead of 28*N*D.

Three semantics, side by side (``SEMANTICS``):

=============  ==========================  ===============================  =====================
semantics      optimizer                   absent rows                      present rows
=============  ==========================  ===============================  =====================
sparse_adam    ``SparseAdam``              untouched (m, v, p bit for bit)  torch.optim.SparseAdam's update
lazy           ``Adam(..., lazy=True)``    untouched                        Adam's update (TF Addons LazyAdam)
dense          ``Adam`` / ``AdamW``        zero gradient: m, v decay and    Adam's update: bitwise the dense
               (the default)               p keeps moving (Keras)           step on the materialised gradient
=============  ==========================  ===============================  =====================

In every one the step count is the param's own and grows by one at every
step that gives the param a grad (a RowGrad with K = 0 included), so the
bias correction is the dense one. ``weight_decay`` applies where the update
runs: the present rows (lazy) or every row (dense); SparseAdam has none.

Coalescing (glossary): a RowGrad's rows with one index are summed, in input
order ((r0 + r1) + r2 ...), into one row per distinct index, the indices in
ascending order: a stable sort, so the order is unique and the C kernel
(csrc/rows.c, a radix sort) and this module's NumPy mirror (a stable
argsort) agree bit for bit. ``Coalesced`` holds the result: ``order`` (the
rows' positions in coalesced order), ``start`` (each distinct index's first
position in ``order``, then K) and ``unique`` (the distinct indices).

Clipping (``max_grad_norm``) and ``skip_nonfinite`` take the norm of the
coalesced gradient: the gradient the rows stand for, whose norm is the dense
gradient's (the absent rows are zero), summed in csrc/grad_norm.c's fixed
order over the coalesced rows, and added to the dense grads' sum of squares.
"""

from dataclasses import dataclass

import numpy as np

from adamcore import _impl, reference
from adamcore.kinds import ADAM, SPARSE_ADAM as SPARSE_ADAM_KIND, AdamHyper, SparseAdamHyper

from adamcore.rowgrad import Coalesced, RowGrad  # noqa: F401 (RowGrad: re-exported)

@dataclass(frozen=True)
class Semantics:
    """One way a row gradient steps a table: ``code`` the kernel's
    (csrc/adamcore.h: ADAMCORE_ROWS_*), ``touches_absent`` whether rows not
    named are updated too."""
    name: str
    code: int
    touches_absent: bool


LAZY = Semantics("lazy", 0, False)
DENSE = Semantics("dense", 1, True)
SPARSE_ADAM = Semantics("sparse_adam", 2, False)

#: name -> Semantics; the tests are parametrised from it.
SEMANTICS = {s.name: s for s in (LAZY, DENSE, SPARSE_ADAM)}


# ---- the NumPy mirror ---------------------------------------------------------------

def coalesce(indices, n_rows):
    """The coalesced order of ``indices`` (checked in [0, n_rows)): a stable
    argsort, so the same order as csrc/rows.c's radix sort."""
    check_range(indices, n_rows)
    order = np.argsort(indices, kind="stable").astype(np.int64, copy=False)
    keys = indices[order]
    first = np.ones(keys.shape[0], bool)
    first[1:] = keys[1:] != keys[:-1]
    start = np.append(np.flatnonzero(first), keys.shape[0]).astype(np.int64)
    return Coalesced(order, start, keys[first].astype(np.int64))


def summed_rows(rows, c):
    """The n_unique x D coalesced rows: each distinct index's rows added in
    input order, one addition at a time ((r0 + r1) + r2 ..., as csrc/rows.c)."""
    counts = np.diff(c.start)
    out = rows[c.order[c.start[:-1]]]            # g = r0
    with np.errstate(over="ignore", invalid="ignore"):  # IEEE results, as in C
        for k in range(1, int(counts.max(initial=1))):
            more = np.flatnonzero(counts > k)
            out[more] += rows[c.order[c.start[more] + k]]  # g = g + r_k
    return out


def sumsq(rows, c):
    """(sum of squares, any element NaN or inf) of the coalesced gradient."""
    return reference.grad_sumsq([summed_rows(rows, c)])


def _sparse_adam_update(p, g, m, v, s, maximize):
    """torch.optim.SparseAdam's update of gathered rows, in place (see
    csrc/sparse_adam_body.h: the same operations in the same order)."""
    g = g * s["gscale"]                           # g = g * grad_scale
    if maximize:
        np.negative(g, out=g)                     # g = -g
    t = np.subtract(g, m)                         # m = m + (g - m)*(1-b1)
    np.multiply(t, s["omb1"], out=t)
    np.add(m, t, out=m)
    np.multiply(g, g, out=t)                      # v = v + (g*g - v)*(1-b2)
    np.subtract(t, v, out=t)
    np.multiply(t, s["omb2"], out=t)
    np.add(v, t, out=v)
    np.sqrt(v, out=t)                             # p = p - step_size*(m/(sqrt(v)+eps))
    np.add(t, s["eps"], out=t)
    np.divide(m, t, out=t)
    np.multiply(t, s["step_size"], out=t)
    np.subtract(p, t, out=p)


def reference_step(semantics, param, states, grad, c, hyper, step, grad_scale):
    """One row step in NumPy (the oracle of adamcore._kernel.rows_step):
    ``states`` the param's (exp_avg, exp_avg_sq, max_exp_avg_sq or None),
    ``hyper`` an adamcore.kinds.AdamHyper (``adam_hyper``)."""
    g = summed_rows(grad.rows, c)
    wd_mode = (None if float(hyper.weight_decay) == 0.0
               else ("decoupled" if hyper.decoupled else "coupled"))
    if semantics is DENSE:
        dense = np.zeros_like(param)
        dense[c.unique] = g
        s = reference.adam_scalars(hyper, step, grad_scale, param.dtype)
        scratch = (np.empty(param.size, param.dtype), np.empty(param.size, param.dtype))
        reference.adam_update(param, dense, *states, s, maximize=bool(hyper.maximize),
                              wd_mode=wd_mode, scratch=scratch)
        return
    # LAZY and SPARSE_ADAM: gather the named rows, update them, scatter them back
    u = c.unique
    rows = [None if a is None else a[u] for a in (param, *states)]
    if semantics is SPARSE_ADAM:
        s = reference.adam_scalars(hyper, step, grad_scale, param.dtype)
        _sparse_adam_update(rows[0], g, rows[1], rows[2], s, bool(hyper.maximize))
    else:
        s = reference.adam_scalars(hyper, step, grad_scale, param.dtype)
        scratch = (np.empty(g.size, param.dtype), np.empty(g.size, param.dtype))
        reference.adam_update(rows[0], g, rows[1], rows[2], rows[3], s,
                              maximize=bool(hyper.maximize), wd_mode=wd_mode, scratch=scratch)
    for a, r in zip((param, *states), rows):
        if a is not None:
            a[u] = r


def adam_hyper(hyper):
    """The AdamHyper a row step runs with: SparseAdam's hyper becomes Adam's
    with epsilon outside the bias correction ("keras": torch's SparseAdam
    places it so), no weight decay and no AMSGrad."""
    if type(hyper) is SparseAdamHyper:
        return AdamHyper(hyper.lr, hyper.beta1, hyper.beta2, hyper.eps, 0.0, "keras", False,
                         hyper.maximize, False)
    return hyper


# ---- checks --------------------------------------------------------------------------

def semantics_of(kind, group, index):
    """The Semantics a RowGrad for ``params[index]`` in ``group`` steps with."""
    if kind is SPARSE_ADAM_KIND:
        return SPARSE_ADAM
    if kind is ADAM:
        return LAZY if group.get("lazy") else DENSE
    raise TypeError(f"grads[{index}] is a RowGrad, which the {kind.name} optimizer does not "
                    "take; row gradients step Adam, AdamW (lazy or dense) and SparseAdam")


def check_range(indices, n_rows):
    """Every index in [0, n_rows), or a ValueError naming the first that is not."""
    bad = np.flatnonzero((indices < 0) | (indices >= n_rows))
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"RowGrad indices[{k}] = {int(indices[k])} is outside the param's "
                         f"{n_rows} rows [0, {n_rows})")


def check(index, param, grad):
    """A RowGrad against its param (``params[index]``), before anything runs."""
    name = f"grads[{index}]"
    if param.ndim != 2:
        raise ValueError(f"{name} is a RowGrad but params[{index}] has shape {param.shape}; "
                         "row gradients are for 2-D params (tables of rows)")
    if not param.flags.c_contiguous:
        raise ValueError(f"{name} is a RowGrad but params[{index}] is not C-contiguous; "
                         "its rows must be contiguous")
    if grad.rows.dtype != param.dtype:
        raise TypeError(f"{name}.rows has dtype {grad.rows.dtype} but params[{index}] has "
                        f"dtype {param.dtype}")
    if grad.rows.shape[1] != param.shape[1]:
        raise ValueError(f"{name}.rows has width {grad.rows.shape[1]} but params[{index}] has "
                         f"rows of width {param.shape[1]} (shape {param.shape})")


# ---- dispatch ---------------------------------------------------------------------------

def _kernel_or_none(impl):
    return _impl.kernel() if impl == "c" else None


def prepare(grad, n_rows, impl):
    """The RowGrad's Coalesced order, checked against ``n_rows``."""
    k = _kernel_or_none(impl)
    if k is None:
        return coalesce(grad.indices, n_rows)
    try:
        return k.rows_coalesce(grad.indices, n_rows)
    except ValueError:
        check_range(grad.indices, n_rows)  # names the index
        raise


def grad_sumsq(grad, c, n_threads, impl):
    k = _kernel_or_none(impl)
    if k is None:
        return sumsq(grad.rows, c)
    return k.rows_sumsq(grad.rows, c, n_threads)


def step(semantics, param, states, grad, c, hyper, step_count, grad_scale, n_threads, impl):
    """Step one param with its checked RowGrad, coalesced as ``c``."""
    hyper = adam_hyper(hyper)
    k = _kernel_or_none(impl)
    if k is None:
        reference_step(semantics, param, states, grad, c, hyper, step_count, grad_scale)
    else:
        k.rows_step(semantics.code, param, *states, grad.rows, c, hyper, step_count, grad_scale,
                    n_threads)
