"""Adam and AdamW optimizer classes with PyTorch's API over NumPy arrays
(the machinery is adamcore._base.Optimizer's)."""

from adamcore import _base, kinds


class Adam(_base.Optimizer):
    r"""Adam (Kingma & Ba, 2015) with PyTorch's semantics and defaults.

    For each parameter :math:`p` with gradient :math:`g` at step :math:`t`::

        g = -g                              if maximize
        g = g + weight_decay * p            if weight_decay (L2, coupled)
        p = p * (1 - lr * weight_decay)     instead, if decoupled_weight_decay (AdamW)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v = vmax = maximum(vmax, v)         if amsgrad
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    ``eps_mode="keras"`` puts epsilon where Keras/TF do (the paper's "epsilon
    hat"): ``p = p - lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + eps)``.

    Parameters are contiguous float32/float64 NumPy arrays, updated in place.
    ``params`` is a list of arrays or of param-group dicts (``{"params": [...],
    "lr": ...}``) whose options override the defaults for that group.

    ``step(grads)`` takes the gradients in the order of the params (None skips
    a param; a single array when there is one param);
    ``apply_gradients(zip(grads, params))`` is the Keras form. ``state[i]``
    holds ``step``, ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``) of
    the i-th param across all groups (a read-only view: replace state with
    ``load_state_dict``). ``max_grad_norm`` clips the grads' global norm
    inside the step and ``skip_nonfinite`` skips steps with NaN or inf grads
    (see ``step``); ``save`` / ``load`` write and read checkpoints. ``n_threads`` (None: OpenMP's limit) and
    ``impl`` ("auto", "c", "numpy") choose how the step runs, never its result.
    Steps and state access from several threads are serialised by ``lock``
    (reentrant; hold it to change several options at once).
    """

    KIND = kinds.ADAM

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 amsgrad=False, maximize=False, decoupled_weight_decay=False,
                 eps_mode="torch", max_grad_norm=None, skip_nonfinite=False,
                 n_threads=None, impl="auto"):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay, eps_mode=eps_mode)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019):
    ``p = p * (1 - lr * weight_decay)`` before the Adam update, instead of
    adding ``weight_decay * p`` to the gradient. Same API as :class:`Adam`."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *,
                 amsgrad=False, maximize=False, eps_mode="torch", max_grad_norm=None,
                 skip_nonfinite=False, n_threads=None, impl="auto"):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True, eps_mode=eps_mode,
                         max_grad_norm=max_grad_norm, skip_nonfinite=skip_nonfinite,
                         n_threads=n_threads, impl=impl)
