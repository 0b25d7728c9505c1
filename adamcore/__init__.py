"""adamcore: a fused, multi-threaded, bitwise-deterministic Adam for NumPy.

    import numpy as np, adamcore
    w = np.zeros(3, np.float32)
    opt = adamcore.Adam([w], lr=1e-3)
    opt.step([grad_w])          # w is updated in place
"""

from adamcore import (checkpoint, clip, functional, kinds, plan, reference, rows, schedules,
                      torch_state)
from adamcore._info import build_info, set_simd_level
from adamcore.clip import clip_grad_norm, clip_grad_value, grad_norm
from adamcore.family import SGD, AdaBelief, Adagrad, RMSprop
from adamcore.flat import FlatParams
from adamcore.optimizer import Adam, AdamW, SparseAdam
from adamcore.rowgrad import RowGrad
from adamcore.schedules import (ConstantLR, ExponentialLR, LRScheduler, OneCycleLR,
                                ReduceLROnPlateau, StepLR, WarmupCosineLR)
from adamcore.torch_state import from_torch_state_dict, to_torch_state_dict

__version__ = "0.1.0"

__all__ = ["AdaBelief", "Adagrad", "Adam", "AdamW", "RMSprop", "SGD", "SparseAdam",
           "ConstantLR", "ExponentialLR", "FlatParams", "LRScheduler", "OneCycleLR",
           "ReduceLROnPlateau", "RowGrad", "StepLR", "WarmupCosineLR", "build_info",
           "checkpoint", "clip", "clip_grad_norm", "clip_grad_value", "from_torch_state_dict",
           "functional", "grad_norm", "kinds", "plan", "reference", "rows", "schedules",
           "set_simd_level", "to_torch_state_dict", "torch_state"]
