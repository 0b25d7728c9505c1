"""SGD (momentum, Nesterov), RMSprop, Adagrad and AdaBelief: fused kernels
(csrc/family_body.h) behind the same API as Adam (adamcore._base.Optimizer),
with the same determinism: every implementation, thread count and SIMD level
gives the same bits as the NumPy reference (adamcore.reference)."""

from adamcore import _base, kinds


class SGD(_base.Optimizer):
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

    KIND = kinds.SGD

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, max_grad_norm=None, skip_nonfinite=False,
                 n_threads=None, impl="auto"):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)





class RMSprop(_base.Optimizer):
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

    KIND = kinds.RMSPROP

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False, max_grad_norm=None, skip_nonfinite=False,
                 n_threads=None, impl="auto"):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)





class Adagrad(_base.Optimizer):
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

    KIND = kinds.ADAGRAD

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False,
                 max_grad_norm=None, skip_nonfinite=False, n_threads=None, impl="auto"):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)






class AdaBelief(_base.Optimizer):
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

    KIND = kinds.ADABELIEF

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0, *,
                 amsgrad=False, decoupled_weight_decay=True, rectify=False, maximize=False,
                 max_grad_norm=None, skip_nonfinite=False, n_threads=None, impl="auto"):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, decoupled_weight_decay=decoupled_weight_decay,
                        rectify=rectify, maximize=maximize)
        super().__init__(params, defaults, max_grad_norm=max_grad_norm,
                         skip_nonfinite=skip_nonfinite, n_threads=n_threads, impl=impl)
