"""An Adam optimizer to and from a ``torch.optim.Adam`` / ``AdamW``
``state_dict()``, in torch's layout and key names.

    torch_opt.load_state_dict(to_torch_state_dict(opt))
    from_torch_state_dict(opt, torch_opt.state_dict())

torch is imported only when a conversion runs, and is not required: without
it, values are NumPy arrays in the same places.
"""

import json

import numpy as np

from adamcore import kinds
from adamcore.checkpoint import _plain

# Options torch's Adam/AdamW groups have and adamcore's do not: how torch runs
# a step, not what it computes ("initial_lr" is written by torch's LR
# schedulers, "param_names" by optimizers over named parameters).
_TORCH_ONLY = ("foreach", "capturable", "differentiable", "fused", "initial_lr", "param_names")
_SHARED = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")


def _require_adam(opt):
    if getattr(opt, "KIND", None) is not kinds.ADAM:
        raise TypeError(f"torch state_dict conversion is for adamcore.Adam / AdamW, got "
                        f"{type(opt).__name__} (its state_dict() already uses torch's key names)")


def to_torch_state_dict(opt):
    """``opt``'s state in the layout and key names of ``torch.optim.Adam`` /
    ``AdamW``'s ``state_dict()``, for ``torch_opt.load_state_dict``.

    Values are torch tensors (copies) when torch imports, with ``step`` a
    float32 0-d tensor as torch keeps it; without torch, NumPy arrays in the
    same places. torch's execution options are its defaults (``foreach`` and
    ``fused`` None). A group with ``eps_mode="keras"`` is refused: torch's Adam
    has no such epsilon placement.
    """
    _require_adam(opt)
    try:
        import torch
    except ImportError:
        torch = None
    sd = opt.state_dict()
    groups = []
    for gi, g in enumerate(sd["param_groups"]):
        if g["eps_mode"] != "torch":
            raise ValueError(f"param group {gi} has eps_mode={g['eps_mode']!r}, which "
                             "torch.optim.Adam cannot express; only eps_mode='torch' converts")
        plain = json.loads(json.dumps(g, default=_plain))  # Python numbers and bools
        groups.append({**{k: plain[k] for k in _SHARED}, "betas": tuple(plain["betas"]),
                       "foreach": None, "capturable": False, "differentiable": False,
                       "fused": None, "decoupled_weight_decay": plain["decoupled_weight_decay"],
                       "params": g["params"]})
    state = {}
    for i, st in sd["state"].items():
        step = np.array(st.pop("step"), np.float32)
        entry = {"step": step, **st}
        state[i] = entry if torch is None else {k: torch.from_numpy(a) for k, a in entry.items()}
    return {"state": state, "param_groups": groups}


def _item(value):
    """A tensor or NumPy scalar as a Python number; anything else unchanged."""
    return value.item() if hasattr(value, "item") else value


def _step(value):
    """torch's float step count as an int (load_state_dict refuses a non-integer)."""
    value = _item(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def from_torch_state_dict(opt, state_dict):
    """Load a ``torch.optim.Adam`` / ``AdamW`` ``state_dict()`` into ``opt``.

    Tensors become NumPy arrays (copied into ``opt``'s own buffers), ``step``
    an int; groups get ``eps_mode="torch"``. torch's execution options
    (``foreach``, ``fused``, ...) are dropped; a group without
    ``decoupled_weight_decay`` (older torch) keeps ``opt``'s default. Checked
    like ``load_state_dict``, which it calls: a mismatch changes nothing.
    """
    _require_adam(opt)
    if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
        raise ValueError("state_dict must be a dict with keys 'state' and 'param_groups'")
    groups = []
    for gi, g in enumerate(state_dict["param_groups"]):
        missing = sorted(set(_SHARED) - set(g))
        unknown = sorted(set(g) - set(_SHARED) - set(_TORCH_ONLY)
                         - {"decoupled_weight_decay", "params"})
        if missing or unknown:
            raise ValueError(f"param group {gi} is not a torch Adam group: "
                             f"missing {missing}, unknown {unknown}")
        groups.append({**{k: _item(g[k]) for k in _SHARED},
                       "betas": tuple(_item(b) for b in g["betas"]),
                       "decoupled_weight_decay": g.get("decoupled_weight_decay",
                                                       opt.defaults["decoupled_weight_decay"]),
                       "eps_mode": "torch", "params": list(g["params"])})
    state = {i: {k: _step(v) if k == "step" else _array(v) for k, v in st.items()}
             for i, st in state_dict["state"].items()}
    opt.load_state_dict({"state": state, "param_groups": groups})


def _array(value):
    """A tensor as a NumPy array (a view: load_state_dict copies it); anything
    else unchanged, for load_state_dict to check."""
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value
