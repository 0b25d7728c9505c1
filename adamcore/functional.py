"""Stateless Adam steps on arrays you own (like torch.optim's functional API)."""

from adamcore import _impl, kinds, reference
from adamcore.plan import Bucket


def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1, beta2, eps,
              weight_decay=0.0, decoupled=False, max_exp_avg_sq=None, maximize=False,
              eps_mode="torch", grad_scale=1.0, n_threads=None, impl="auto"):
    r"""One Adam step of ``param``, in place, updating the moments in place.

    With :math:`g` = ``grad`` and :math:`t` = ``step`` (the count *after* this
    update, starting at 1), each element does, in this order::

        g = g * grad_scale                  (global-norm clipping, fused; 1: none)
        g = -g                              if maximize
        g = g + weight_decay * p            if weight_decay and not decoupled (L2)
        p = p * (1 - lr * weight_decay)     if weight_decay and decoupled (AdamW)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * (g * g)
        v = vmax = maximum(vmax, v)         if max_exp_avg_sq is given (AMSGrad)
        p = p - step_size * (m / (sqrt(v) * dscale + eps))

    with bc1 = 1 - beta1**t and bc2 = 1 - beta2**t computed once in double:

    - ``eps_mode="torch"`` (PyTorch, the paper's algorithm 1):
      step_size = lr / bc1, dscale = 1 / sqrt(bc2).
    - ``eps_mode="keras"`` (Keras/TF, the paper's "epsilon hat"):
      step_size = lr * sqrt(bc2) / bc1, dscale = 1.

    All arrays must be contiguous float32 or float64 arrays of one dtype, shape
    and memory layout, with no two sharing memory; ``grad`` may be read-only.
    Invalid input raises TypeError or ValueError before anything is written.

    ``n_threads``: None uses OpenMP's limit, n >= 1 at most n threads, n < 0
    all but ``-n - 1``. ``impl``: "auto", "c" or "numpy" (see adamcore docs).
    Every implementation, thread count and SIMD level gives the same bits.
    """
    states = ([exp_avg], [exp_avg_sq], None if max_exp_avg_sq is None else [max_exp_avg_sq])
    fields = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay,
              "eps_mode": eps_mode, "amsgrad": max_exp_avg_sq is not None, "maximize": maximize,
              "decoupled": decoupled}
    if _impl.resolve(impl) == "c":  # one tensor, checked on the stack
        _impl.kernel().step_one(kinds.ADAM, param, grad, states, step, grad_scale, n_threads,
                                fields)
        return
    reference.step_buckets([Bucket(kinds.ADAM, kinds.AdamHyper(**fields), step, [param], [grad],
                                   states, None, grad_scale)], n_threads)
