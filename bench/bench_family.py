"""pytest-benchmark suite for the optimizer family: ``pytest bench``.

SGD with momentum, RMSprop, Adagrad and AdaBelief, float32, one thread, one
step per round: adamcore's C kernel and NumPy fallback against torch.optim's
foreach and fused paths on the same arrays (torch has no AdaBelief and no
fused RMSprop). Implementations of one (optimizer, size) share a group.
"""

import numpy as np
import pytest

import adamcore

try:
    import torch
except ImportError:
    torch = None

SIZES = [2 ** k for k in (10, 16, 20)]
# name -> (adamcore class, torch class name or None, options shared by both)
OPTIMIZERS = {
    "sgd-momentum": (adamcore.SGD, "SGD", dict(lr=0.01, momentum=0.9)),
    "rmsprop": (adamcore.RMSprop, "RMSprop", dict(lr=0.01)),
    "adagrad": (adamcore.Adagrad, "Adagrad", dict(lr=0.01)),
    "adabelief": (adamcore.AdaBelief, None, dict(lr=0.01)),
}
IMPLS = ["c", "numpy", "torch-foreach", "torch-fused"]


def make_step(name, impl, n):
    cls, torch_name, options = OPTIMIZERS[name]
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    if not impl.startswith("torch"):
        opt = cls([p], **options, n_threads=1, impl=impl)
        return lambda: opt.step([g])
    if torch is None:
        pytest.skip("needs torch (pip install torch==2.13.0)")
    if torch_name is None:
        pytest.skip(f"torch.optim has no {name}")
    tp = torch.from_numpy(p)
    tp.grad = torch.from_numpy(g)
    mode = dict(foreach=True) if impl == "torch-foreach" else dict(fused=True)
    torch.set_num_threads(1)
    try:
        opt = getattr(torch.optim, torch_name)([tp], **options, **mode)
        opt.step()
    except (RuntimeError, TypeError, ValueError) as exc:
        pytest.skip(f"torch {torch.__version__} has no {impl} {torch_name} on CPU: {exc}")
    return opt.step


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_family_step(benchmark, name, n, impl):
    step = make_step(name, impl, n)
    step()  # state allocated before timing
    benchmark.group = f"{name}-n{n}"
    benchmark(step)
    benchmark.extra_info.update(elements=n, threads=1)
