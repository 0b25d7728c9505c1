"""adamcore: a fused, multi-threaded, bitwise-deterministic Adam for NumPy.

    import numpy as np, adamcore
    w = np.zeros(3, np.float32)
    opt = adamcore.Adam([w], lr=1e-3)
    opt.step([grad_w])          # w is updated in place
"""

from adamcore import clip, functional, reference, schedules
from adamcore._info import build_info, set_simd_level
from adamcore.clip import clip_grad_norm, clip_grad_value, grad_norm
from adamcore.optimizer import Adam, AdamW
from adamcore.schedules import (ConstantLR, ExponentialLR, LRScheduler, OneCycleLR,
                                ReduceLROnPlateau, StepLR, WarmupCosineLR)

__version__ = "0.1.0"

__all__ = ["Adam", "AdamW", "clip", "clip_grad_norm", "clip_grad_value", "grad_norm",
           "ConstantLR", "ExponentialLR", "LRScheduler", "OneCycleLR",
           "ReduceLROnPlateau", "StepLR", "WarmupCosineLR", "build_info", "functional",
           "reference", "schedules", "set_simd_level"]
