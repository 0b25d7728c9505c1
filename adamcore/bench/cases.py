"""The implementations compared, each as a ready-to-time step on prepared data.

Data is built here, outside any timed region; ``Case.step()`` performs one
optimizer step and nothing else. Torch runs on ``torch.from_numpy`` views of
the same kind of NumPy arrays (installed with ``pip install torch==2.13.0``).
"""

import importlib.util

import numpy as np

import adamcore
from adamcore import _alloc, _impl, functional, textbook
from adamcore.flat import FlatParams

try:
    import torch
except ImportError:  # torch cases are reported as unavailable
    torch = None

#: name -> what it is. "textbook" and "numpy" are single-threaded by nature.
IMPLS = {
    "textbook": "textbook NumPy Adam (the tutorial formula, with temporaries)",
    "numpy": "adamcore.Adam(impl='numpy'): the NumPy fallback",
    "c-functional": "adamcore.functional.adam_step (C kernel)",
    "c-adam": "adamcore.Adam.step (C kernel)",
    "c-flat": "adamcore.Adam.step over adamcore.FlatParams: one buffer (C kernel)",
    "c-adam-frozen": "adamcore.Adam.step with the middle param frozen (its grad None every step)",
    "c-adam-skipped-once": "adamcore.Adam.step after one step that skipped the middle param",
    "torch-single": "torch.optim.Adam(foreach=False)",
    "torch-foreach": "torch.optim.Adam(foreach=True)",
    "torch-fused": "torch.optim.Adam(fused=True)",
    "torch-adamcore": "adamcore.torch.Adam: a torch.optim.Optimizer over adamcore's C kernel",
    "deepspeed-cpu": "deepspeed.ops.adam.DeepSpeedCPUAdam(adamw_mode=False) "
                     "(optional: pip install deepspeed; its op builds on first use)",
    "probe": "not an optimizer: Adam's memory traffic with one add per element "
             "(csrc/stream_probe.c), the fastest any step can be at this size",
}
#: name -> the legend's words for it: what each series is.
LABELS = {
    "textbook": "textbook NumPy Adam",
    "numpy": "adamcore.Adam, NumPy fallback",
    "c-functional": "adamcore functional.adam_step",
    "c-adam": "adamcore.Adam",
    "c-flat": "adamcore.Adam over FlatParams",
    "c-adam-frozen": "adamcore.Adam, one param frozen",
    "c-adam-skipped-once": "adamcore.Adam after a skipped param",
    "torch-single": "torch Adam (foreach=False)",
    "torch-foreach": "torch Adam (foreach)",
    "torch-fused": "torch Adam (fused)",
    "torch-adamcore": "adamcore.torch.Adam",
    "deepspeed-cpu": "DeepSpeed CPU Adam",
    "probe": "stream probe: a step's memory traffic only",
}
assert set(LABELS) == set(IMPLS)
SINGLE_THREADED = ("textbook", "numpy")
#: Timed with many tensors only: over one tensor it is c-adam.
MANY_TENSORS_ONLY = ("c-flat", "c-adam-frozen", "c-adam-skipped-once")


#: Steps on torch tensors, under torch's process-wide thread count.
TORCH_THREADED = ("torch-single", "torch-foreach", "torch-fused", "torch-adamcore",
                  "deepspeed-cpu")
#: impl -> how to install what it needs.
INSTALL = {impl: "pip install torch" for impl in TORCH_THREADED}
INSTALL["deepspeed-cpu"] = "pip install torch deepspeed"


def available(impl):
    if impl == "probe":
        return _impl.kernel() is not None
    if impl == "deepspeed-cpu":  # found, not imported: deepspeed takes seconds to import
        return torch is not None and importlib.util.find_spec("deepspeed") is not None
    if impl == "torch-adamcore":
        return torch is not None and _impl.kernel() is not None
    return impl not in TORCH_THREADED or torch is not None


def bytes_per_element(dtype):
    """A step reads p, g, m, v and writes p, m, v: 7 arrays."""
    return 7 * np.dtype(dtype).itemsize


class Case:
    """One implementation stepping ``n_tensors`` arrays totalling ``n`` elements."""

    def __init__(self, impl, dtype, n, threads, n_tensors=1, seed=0):
        if not available(impl):
            raise RuntimeError(f"{impl} is not available here ({INSTALL.get(impl)})")
        self.impl, self.dtype, self.n, self.threads = impl, np.dtype(dtype), n, threads
        rng = np.random.default_rng(seed)
        size = n // n_tensors
        params = [rng.standard_normal(size).astype(dtype) for _ in range(n_tensors)]
        grads = [rng.standard_normal(size).astype(dtype) for _ in range(n_tensors)]
        self.params = params  # what step() updates (torch steps views of them)
        self._t = 0
        self.step = getattr(self, "_prepare_" + impl.replace("-", "_"))(params, grads)
        self.step()  # state allocated and pages touched before any timing

    def enter(self):
        """Set process-wide thread settings (torch's) before timing this case."""
        if self.impl in TORCH_THREADED:
            torch.set_num_threads(self.threads)

    def _prepare_textbook(self, params, grads):
        ms = [np.zeros_like(p) for p in params]
        vs = [np.zeros_like(p) for p in params]

        def step():
            self._t += 1
            for p, g, m, v in zip(params, grads, ms, vs):
                textbook.adam_step(p, g, m, v, self._t)
        return step

    def _prepare_numpy(self, params, grads):
        return self._optimizer_step(params, grads, "numpy")

    def _prepare_c_adam(self, params, grads):
        return self._optimizer_step(params, grads, "c")

    def _prepare_c_flat(self, params, grads):
        fp = FlatParams(params, self.dtype)
        for view, g in zip(fp.grads, grads):
            view[...] = g
        self.params = list(fp.params)  # the views holding copies of params: these step
        opt = adamcore.Adam([fp.flat], n_threads=self.threads, impl="c")
        flat_grads = [fp.flat_grad]
        return lambda: opt.step(flat_grads)

    def _optimizer_step(self, params, grads, impl):
        opt = adamcore.Adam(params, n_threads=self.threads, impl=impl)
        return lambda: opt.step(grads)

    def _prepare_c_adam_frozen(self, params, grads):
        frozen = list(grads)
        frozen[len(frozen) // 2] = None  # never stepped: it has no state
        return self._optimizer_step(params, frozen, "c")

    def _prepare_c_adam_skipped_once(self, params, grads):
        opt = adamcore.Adam(params, n_threads=self.threads, impl="c")
        skipped = list(grads)
        skipped[len(skipped) // 2] = None
        opt.step(grads)
        opt.step(skipped)  # from now on that param is a step behind the others
        return lambda: opt.step(grads)

    def _prepare_c_functional(self, params, grads):
        ms = [np.zeros_like(p) for p in params]
        vs = [np.zeros_like(p) for p in params]
        threads = self.threads
        if len(params) == 1:  # the per-call cost alone, no Python loop around it
            p, g, m, v = params[0], grads[0], ms[0], vs[0]
            return lambda: functional.adam_step(p, g, m, v, step=1, lr=1e-3, beta1=0.9,
                                                beta2=0.999, eps=1e-8, n_threads=threads,
                                                impl="c")

        def step():
            self._t += 1
            for p, g, m, v in zip(params, grads, ms, vs):
                functional.adam_step(p, g, m, v, step=self._t, lr=1e-3, beta1=0.9,
                                     beta2=0.999, eps=1e-8, n_threads=threads, impl="c")
        return step

    def _prepare_probe(self, params, grads):
        # The step's bytes as float32 (a float64 array is twice as many), and
        # state at the param's offset mod 64, as adamcore allocates it.
        kernel, threads = _impl.kernel(), self.threads
        runs = []
        for p, g in zip(params, grads):
            p, g = p.view(np.float32), g.view(np.float32)
            runs.append((p, g, *_alloc.zeros_like_aligned([p, p])))
        if len(runs) == 1:
            p, g, m, v = runs[0]
            return lambda: kernel.stream_probe(p, g, m, v, threads)

        def step():
            for p, g, m, v in runs:
                kernel.stream_probe(p, g, m, v, threads)
        return step

    def _torch_step(self, params, grads, cls=None, **mode):
        tparams = [torch.from_numpy(p) for p in params]
        for tp, g in zip(tparams, grads):
            tp.grad = torch.from_numpy(g)
        opt = (cls or torch.optim.Adam)(tparams, lr=1e-3, **mode)
        return opt.step

    def _prepare_torch_single(self, params, grads):
        return self._torch_step(params, grads, foreach=False)

    def _prepare_torch_foreach(self, params, grads):
        return self._torch_step(params, grads, foreach=True)

    def _prepare_torch_fused(self, params, grads):
        return self._torch_step(params, grads, fused=True)

    def _prepare_torch_adamcore(self, params, grads):
        import adamcore.torch  # noqa: PLC0415 - imports torch
        return self._torch_step(params, grads, adamcore.torch.Adam, n_threads=self.threads)

    def _prepare_deepspeed_cpu(self, params, grads):
        from deepspeed.ops.adam import DeepSpeedCPUAdam  # noqa: PLC0415 - slow import
        return self._torch_step(params, grads, DeepSpeedCPUAdam, adamw_mode=False)
