"""SGD (momentum, Nesterov), RMSprop, Adagrad and AdaBelief: fused kernels
(csrc/family_body.h) behind the same API as Adam (adamcore._base.Optimizer),
with the same determinism: every implementation, thread count and SIMD level
gives the same bits as the NumPy reference (adamcore.reference)."""

from adamcore import _base, _impl, _validate


class _Family(_base.Optimizer):
    """A family optimizer: ``STATE_KEYS`` are its kernel's state slots
    (adamcore._validate.FAMILY_SLOTS), ``_FLAGS`` its bool options,
    ``_state_keys`` the slots a group's options use (the kernel's
    required_slots, read straight off the group: it runs every step), and
    ``_hyper`` turns a group into the kernel's hyperparameters."""

    @classmethod
    def _check_group_options(cls, group):
        _validate.check_lr(group["lr"])
        _validate.check_weight_decay(group["weight_decay"])
        _base.check_flags(group, cls._FLAGS)
        cls._check_kind_options(group)

    @staticmethod
    def _init_value(key, group):
        return 0.0

    def _bucket(self, group, lists, grads, step, scale, new_keys):
        ps, states, idx = lists
        states += (None,) * (3 - len(states))  # the kernel's 3 slots
        return (ps, grads, states, idx, self._hyper(group, step, scale, new_keys))

    @staticmethod
    def _stepper(impl):
        return _impl.family_stepper(impl)


class SGD(_Family):
    r"""Stochastic gradient descent with momentum and Nesterov momentum,
    PyTorch's ``torch.optim.SGD`` semantics and defaults. Per element::

        g = -g                             if maximize
        g = g + weight_decay * p           if weight_decay
        buf = g                            on a param's first step with momentum
        buf = momentum * buf + (1 - dampening) * g    afterwards
        g = g + momentum * buf             if nesterov, else g = buf   (if momentum)
        p = p - lr * g

    State: ``momentum_buffer`` (only when momentum != 0). Same API as
    :class:`adamcore.Adam` (param groups, ``step``, ``apply_gradients``,
    ``state_dict``, ``save``/``load``, ``max_grad_norm``, ``skip_nonfinite``,
    ``n_threads``, ``impl``).
    """

    STATE_KEYS = ("momentum_buffer",)
    _FLAGS = ("nesterov", "maximize")

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, max_grad_norm=None, skip_nonfinite=False,
                 n_threads=None, impl="auto"):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)

    def _state_keys(self, group):
        return self.STATE_KEYS if float(group["momentum"]) != 0 else ()

    @staticmethod
    def _check_kind_options(group):
        _validate.check_sgd_options(group["momentum"], group["dampening"], group["nesterov"])

    @staticmethod
    def _hyper(group, step, scale, new_keys):
        return _validate.family_hyper(
            "sgd", group["lr"], weight_decay=group["weight_decay"], grad_scale=scale,
            momentum=group["momentum"], dampening=group["dampening"],
            nesterov=bool(group["nesterov"]), maximize=bool(group["maximize"]), step=step,
            first="momentum_buffer" in new_keys)


class RMSprop(_Family):
    r"""RMSprop (Hinton's lecture 6e), PyTorch's ``torch.optim.RMSprop``
    semantics and defaults. Per element::

        g = -g                             if maximize
        g = g + weight_decay * p           if weight_decay
        sq = alpha * sq + (1 - alpha) * (g * g)
        ga = ga + (1 - alpha) * (g - ga);  avg = sqrt(sq - ga * ga) + eps   if centered
        avg = sqrt(sq) + eps                                               otherwise
        buf = momentum * buf + g / avg;    p = p - lr * buf                if momentum
        p = p - lr * (g / avg)                                             otherwise

    State: ``square_avg``, ``momentum_buffer`` (momentum != 0), ``grad_avg``
    (centered), all starting at zero. Same API as :class:`adamcore.Adam`.
    """

    STATE_KEYS = ("square_avg", "momentum_buffer", "grad_avg")
    ALWAYS_KEYS = ("square_avg",)
    _FLAGS = ("centered", "maximize")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False, max_grad_norm=None, skip_nonfinite=False,
                 n_threads=None, impl="auto"):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)

    def _state_keys(self, group):
        return (("square_avg",) + (("momentum_buffer",) if float(group["momentum"]) != 0 else ())
                + (("grad_avg",) if group["centered"] else ()))

    @staticmethod
    def _check_kind_options(group):
        _validate.check_alpha(group["alpha"])
        _validate.check_eps(group["eps"])
        _validate.check_momentum(group["momentum"])

    @staticmethod
    def _hyper(group, step, scale, new_keys):
        return _validate.family_hyper(
            "rmsprop", group["lr"], weight_decay=group["weight_decay"], grad_scale=scale,
            alpha=group["alpha"], eps=group["eps"], momentum=group["momentum"],
            centered=bool(group["centered"]), maximize=bool(group["maximize"]), step=step)


class Adagrad(_Family):
    r"""Adagrad (Duchi et al., 2011), PyTorch's ``torch.optim.Adagrad``
    semantics and defaults. At step :math:`t` (counted from 1), per element::

        g = -g                             if maximize
        g = g + weight_decay * p           if weight_decay
        clr = lr / (1 + (t - 1) * lr_decay)          (once per step, in double)
        sum = sum + g * g
        p = p - clr * (g / (sqrt(sum) + eps))

    State: ``sum``, starting at ``initial_accumulator_value``. Same API as
    :class:`adamcore.Adam`.
    """

    ALWAYS_KEYS = STATE_KEYS = ("sum",)
    _FLAGS = ("maximize",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False,
                 max_grad_norm=None, skip_nonfinite=False, n_threads=None, impl="auto"):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)

    def _state_keys(self, group):
        return self.STATE_KEYS

    @staticmethod
    def _check_kind_options(group):
        _validate.check_lr_decay(group["lr_decay"])
        _validate.check_initial_accumulator_value(group["initial_accumulator_value"])
        _validate.check_eps(group["eps"])

    @staticmethod
    def _init_value(key, group):
        return group["initial_accumulator_value"]

    @staticmethod
    def _hyper(group, step, scale, new_keys):
        return _validate.family_hyper(
            "adagrad", group["lr"], weight_decay=group["weight_decay"], grad_scale=scale,
            lr_decay=group["lr_decay"], eps=group["eps"], maximize=bool(group["maximize"]),
            step=step)


class AdaBelief(_Family):
    r"""AdaBelief (Zhuang et al., NeurIPS 2020): Adam whose second moment
    tracks the "belief" :math:`(g - m)^2` instead of :math:`g^2`, with the
    paper's epsilon inside it. At step :math:`t`, per element::

        g = -g                             if maximize
        p = p * (1 - lr * weight_decay)    if decoupled_weight_decay (default)
        g = g + weight_decay * p           otherwise, if weight_decay
        m = beta1 * m + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * (g - m)**2 + eps
        s = smax = maximum(smax, s)        if amsgrad
        p = p - step_size * (m / (sqrt(s) * dscale + eps))

    with step_size = lr / (1 - beta1**t) and dscale = 1 / sqrt(1 - beta2**t)
    computed once per step in double. This is the default update of the
    reference implementation (``adabelief-pytorch`` 0.2, ``fixed_decay=False``),
    which divides by sqrt(1 - beta2**t) instead: equal up to rounding. Its
    ``weight_decouple`` is ``decoupled_weight_decay`` here, and eps (default
    1e-16, the reference's) is added to ``s`` in place each step, as there.

    ``rectify=True`` is the reference's RAdam-style rectification (off by
    default here, as in the paper's algorithm; with ``degenerated_to_sgd``):
    with rho_inf = 2 / (1 - beta2) - 1 and
    rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t), while rho_t < 5 the
    step is ``p = p - lr / (1 - beta1**t) * m`` (no denominator); afterwards
    dscale = 1 and step_size = lr * sqrt((1 - beta2**t) (rho_t - 4) / (rho_inf - 4)
    (rho_t - 2) / rho_t rho_inf / (rho_inf - 2)) / (1 - beta1**t). With
    amsgrad too, the rectified denominator uses smax (the reference uses s
    there, which makes its amsgrad inert).

    State: ``exp_avg``, ``exp_avg_var``, ``max_exp_avg_var`` (amsgrad). Same
    API as :class:`adamcore.Adam`.
    """

    STATE_KEYS = ("exp_avg", "exp_avg_var", "max_exp_avg_var")
    ALWAYS_KEYS = STATE_KEYS[:2]
    _FLAGS = ("amsgrad", "decoupled_weight_decay", "rectify", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0, *,
                 amsgrad=False, decoupled_weight_decay=True, rectify=False, maximize=False,
                 max_grad_norm=None, skip_nonfinite=False, n_threads=None, impl="auto"):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, decoupled_weight_decay=decoupled_weight_decay,
                        rectify=rectify, maximize=maximize)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)

    def _state_keys(self, group):
        return self.STATE_KEYS if group["amsgrad"] else self.STATE_KEYS[:2]

    @staticmethod
    def _check_kind_options(group):
        _base.check_betas(group["betas"])
        _validate.check_eps(group["eps"])

    @staticmethod
    def _hyper(group, step, scale, new_keys):
        beta1, beta2 = group["betas"]
        return _validate.family_hyper(
            "adabelief", group["lr"], weight_decay=group["weight_decay"], grad_scale=scale,
            beta1=beta1, beta2=beta2, eps=group["eps"], amsgrad=bool(group["amsgrad"]),
            decoupled=bool(group["decoupled_weight_decay"]), rectify=bool(group["rectify"]),
            maximize=bool(group["maximize"]), step=step)

