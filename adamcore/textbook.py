"""Adam as tutorials write it: the formula with temporaries, in NumPy.

Not adamcore's reference (that one mirrors the kernel operation by operation);
this is the baseline people already have, used as an independent check in the
tests and as the "before" in ``python -m adamcore`` and the benchmarks.
"""

import numpy as np


def adam_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """One textbook Adam step (step ``t`` starts at 1), in place on param, m, v."""
    m[...] = beta1 * m + (1 - beta1) * grad
    v[...] = beta2 * v + (1 - beta2) * grad ** 2
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    param -= lr * m_hat / (np.sqrt(v_hat) + eps)
