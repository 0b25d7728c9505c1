"""The registry of optimizer kinds: one ``Kind`` (adamcore.plan) per
algorithm, and the named type of each kind's hyperparameters.

A new kind is one kernel body (csrc/), one reference function
(adamcore.reference), one hyper class and one entry here; its optimizer
class names it as ``KIND``. The binding, the checks and the tests read
everything else off the entry: the state slots, the hyperparameters' fields
and range rules (adamcore._validate), the slots a hyper uses, the kernel.
"""

from dataclasses import dataclass

from adamcore import _validate as v
from adamcore import reference
from adamcore.plan import Kind

# Kernel numbers (csrc/adamcore.h).
(ADAMCORE_SGD, ADAMCORE_RMSPROP, ADAMCORE_ADAGRAD, ADAMCORE_ADABELIEF, ADAMCORE_ADAM,
 ADAMCORE_SPARSE_ADAM) = range(6)


@dataclass(eq=False)
class AdamHyper:
    """Adam's hyperparameters (adamcore.Adam's docstring has the update);
    ``decoupled`` is AdamW's decay of p, ``eps_mode`` "torch" or "keras"."""
    __slots__ = ("lr", "beta1", "beta2", "eps", "weight_decay", "eps_mode", "amsgrad",
                 "maximize", "decoupled")
    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    eps_mode: str
    amsgrad: bool
    maximize: bool
    decoupled: bool


@dataclass(eq=False)
class SparseAdamHyper:
    """SparseAdam's hyperparameters (adamcore.SparseAdam: torch.optim.SparseAdam's)."""
    __slots__ = ("lr", "beta1", "beta2", "eps", "maximize")
    lr: float
    beta1: float
    beta2: float
    eps: float
    maximize: bool


@dataclass(eq=False)
class SGDHyper:
    """SGD's hyperparameters (adamcore.SGD)."""
    __slots__ = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
    lr: float
    momentum: float
    dampening: float
    weight_decay: float
    nesterov: bool
    maximize: bool


@dataclass(eq=False)
class RMSpropHyper:
    """RMSprop's hyperparameters (adamcore.RMSprop)."""
    __slots__ = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")
    lr: float
    alpha: float
    eps: float
    weight_decay: float
    momentum: float
    centered: bool
    maximize: bool


@dataclass(eq=False)
class AdagradHyper:
    """Adagrad's hyperparameters (adamcore.Adagrad); its
    initial_accumulator_value is where state starts, not a step's input."""
    __slots__ = ("lr", "lr_decay", "weight_decay", "eps", "maximize")
    lr: float
    lr_decay: float
    weight_decay: float
    eps: float
    maximize: bool


@dataclass(eq=False)
class AdaBeliefHyper:
    """AdaBelief's hyperparameters (adamcore.AdaBelief)."""
    __slots__ = ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "decoupled",
                 "rectify", "maximize")
    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    amsgrad: bool
    decoupled: bool
    rectify: bool
    maximize: bool


def _check_sgd(h):
    if h.nesterov and (float(h.momentum) <= 0 or float(h.dampening) != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")


ADAM = Kind(
    "adam", ADAMCORE_ADAM, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), ("exp_avg", "exp_avg_sq"),
    AdamHyper,
    dict(lr=v.LR, beta1=v.BETA1, beta2=v.BETA2, eps=v.EPS, weight_decay=v.WEIGHT_DECAY,
         eps_mode=v.EPS_MODE, amsgrad=v.FLAG, maximize=v.FLAG, decoupled=v.FLAG),
    (True, True, "amsgrad"), reference.adam,
    options=dict(decoupled="decoupled_weight_decay"),
    extra=dict(lazy=v.FLAG, state_dtype=v.STATE_DTYPE, seed=v.SEED))

# Row gradients only (adamcore.rows): no dense kernel, so not in KINDS.
SPARSE_ADAM = Kind(
    "sparse_adam", ADAMCORE_SPARSE_ADAM, ("exp_avg", "exp_avg_sq"), ("exp_avg", "exp_avg_sq"),
    SparseAdamHyper, dict(lr=v.LR, beta1=v.BETA1, beta2=v.BETA2, eps=v.EPS, maximize=v.FLAG),
    (True, True), None)

SGD = Kind(
    "sgd", ADAMCORE_SGD, ("momentum_buffer",), (), SGDHyper,
    dict(lr=v.LR, momentum=v.MOMENTUM, dampening=v.DAMPENING, weight_decay=v.WEIGHT_DECAY,
         nesterov=v.FLAG, maximize=v.FLAG),
    ("momentum",), reference.sgd, check=_check_sgd)

RMSPROP = Kind(
    "rmsprop", ADAMCORE_RMSPROP, ("square_avg", "momentum_buffer", "grad_avg"), ("square_avg",),
    RMSpropHyper,
    dict(lr=v.LR, alpha=v.ALPHA, eps=v.EPS, weight_decay=v.WEIGHT_DECAY, momentum=v.MOMENTUM,
         centered=v.FLAG, maximize=v.FLAG),
    (True, "momentum", "centered"), reference.rmsprop)

ADAGRAD = Kind(
    "adagrad", ADAMCORE_ADAGRAD, ("sum",), ("sum",), AdagradHyper,
    dict(lr=v.LR, lr_decay=v.LR_DECAY, weight_decay=v.WEIGHT_DECAY, eps=v.EPS, maximize=v.FLAG),
    (True,), reference.adagrad,
    init=dict(sum="initial_accumulator_value"),
    extra=dict(initial_accumulator_value=v.INITIAL_ACCUMULATOR))

ADABELIEF = Kind(
    "adabelief", ADAMCORE_ADABELIEF, ("exp_avg", "exp_avg_var", "max_exp_avg_var"),
    ("exp_avg", "exp_avg_var"), AdaBeliefHyper,
    dict(lr=v.LR, beta1=v.BETA1, beta2=v.BETA2, eps=v.EPS, weight_decay=v.WEIGHT_DECAY,
         amsgrad=v.FLAG, decoupled=v.FLAG, rectify=v.FLAG, maximize=v.FLAG),
    (True, True, "amsgrad"), reference.adabelief,
    options=dict(decoupled="decoupled_weight_decay"))

#: name -> Kind, every kind the dense kernels step; the tests are parametrised from it.
KINDS = {k.name: k for k in (ADAM, SGD, RMSPROP, ADAGRAD, ADABELIEF)}
