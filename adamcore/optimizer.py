"""Adam, AdamW and SparseAdam optimizer classes with PyTorch's API over
NumPy arrays (the machinery is adamcore._base.Optimizer's)."""

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

    A 2-D param (an embedding table) may take an ``adamcore.RowGrad``
    (indices, rows) instead of a dense grad. By default the result is the
    dense step's on the gradient the rows stand for (Keras: absent rows see a
    zero gradient, their moments decay and they keep moving), computed
    without making that gradient; ``lazy=True`` (per group) steps the present
    rows only (TF Addons' LazyAdam). See adamcore.rows.

    ``state_dtype`` (per group) stores m and v (and the AMSGrad max) in
    fewer bytes: None (the param's dtype), "bfloat16" (2 bytes, stochastic
    rounding drawn from ``seed``; needs ``pip install 'adamcore[bfloat16]'``)
    or "int8" (1 byte and a float32 scale per 256 elements, bitsandbytes'
    dynamic maps; params under 4096 elements keep their dtype's state).
    The step is the same fused pass; adamcore.qstate has the formats and
    rounding rules. The state cannot change format in place: see
    ``load_state_dict(..., convert=True)``.
    """

    KIND = kinds.ADAM
    ADDED_OPTIONS = {"lazy": False, "state_dtype": None, "seed": 0}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 amsgrad=False, maximize=False, decoupled_weight_decay=False,
                 eps_mode="torch", lazy=False, state_dtype=None, seed=0, max_grad_norm=None,
                 skip_nonfinite=False, n_threads=None, impl="auto"):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay, eps_mode=eps_mode,
                        lazy=lazy, state_dtype=state_dtype, seed=seed)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019):
    ``p = p * (1 - lr * weight_decay)`` before the Adam update, instead of
    adding ``weight_decay * p`` to the gradient. Same API as :class:`Adam`."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *,
                 amsgrad=False, maximize=False, eps_mode="torch", lazy=False, state_dtype=None,
                 seed=0, max_grad_norm=None, skip_nonfinite=False, n_threads=None, impl="auto"):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True, eps_mode=eps_mode,
                         lazy=lazy, state_dtype=state_dtype, seed=seed,
                         max_grad_norm=max_grad_norm, skip_nonfinite=skip_nonfinite,
                         n_threads=n_threads, impl=impl)


class SparseAdam(_base.Optimizer):
    r"""torch.optim.SparseAdam over NumPy tables: Adam for row gradients.

    Each param is a 2-D table; ``step`` takes an ``adamcore.RowGrad``
    (indices, rows) per param (None skips it; dense grads are refused, as
    torch refuses them: use Adam). Duplicate indices are summed first (in
    input order); then only the rows named are updated, each with the
    param's step count ``t``, which grows at every step the param gets a
    RowGrad, one of no rows included::

        g = -g                                           if maximize
        m = m + (1 - beta1) * (g - m)
        v = v + (1 - beta2) * (g * g - v)
        p = p - lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + eps)

    The rows not named keep their p, m and v byte for byte. One fused,
    multi-threaded pass over the rows named (csrc/rows.c); the result is
    the same for any thread count and equals the NumPy mirror
    (adamcore.rows) bit for bit. Options as Adam's: ``max_grad_norm`` clips
    by the norm of the coalesced gradient, ``skip_nonfinite``, ``n_threads``,
    ``impl``, ``save`` / ``load``, schedules.
    """

    KIND = kinds.SPARSE_ADAM

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False, *,
                 max_grad_norm=None, skip_nonfinite=False, n_threads=None, impl="auto"):
        defaults = dict(lr=lr, betas=betas, eps=eps, maximize=maximize)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)

    def step(self, grads):
        """Step every param whose grad (a RowGrad) is not None; see the class
        docstring and ``Adam.step`` (the same return value)."""
        with self.lock:
            return self._step_rows(self._grad_list(grads))

    def add_param_group(self, param_group):
        params = param_group.get("params") if isinstance(param_group, dict) else None
        for p in [params] if hasattr(params, "ndim") else (params or ()):
            if getattr(p, "ndim", 2) != 2:
                raise ValueError(f"SparseAdam params must be 2-D tables (rows of an embedding), "
                                 f"got shape {p.shape}")
        super().add_param_group(param_group)
