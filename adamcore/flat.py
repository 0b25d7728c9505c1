"""Flat parameters: a model's params as views into one aligned buffer.

An optimizer over 1000 separate arrays checks them, tests them for overlap
and runs a short loop, with its own peel and tail, per array on every step;
over one buffer holding the same elements each of those happens once. Views
into the buffer keep the per-param shapes for the model code, so nothing is
copied in or out around a step.
"""

import math
import numbers
import operator
import types

import numpy as np

from adamcore import _alloc, _validate


def _shape_of(name, entry):
    """The shape an entry of ``spec`` asks for, and the array to copy, if any."""
    if isinstance(entry, np.ndarray):
        if entry.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real-valued array, got dtype {entry.dtype}")
        return entry.shape, entry
    if isinstance(entry, (bool, np.bool_)):  # an int to operator.index, never a size
        raise TypeError(f"{name} must be a shape or an array, got {entry!r}")
    dims = (entry,) if isinstance(entry, numbers.Integral) else entry
    if not isinstance(dims, (tuple, list)) or any(
            isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) for d in dims):
        raise TypeError(f"{name} must be a shape (an int or a tuple of ints) or an array, "
                        f"got {entry!r}")
    shape = tuple(operator.index(d) for d in dims)
    if any(d < 0 for d in shape):
        raise ValueError(f"{name} has a negative dimension: {shape}")
    return shape, None


class FlatParams:
    """A model's parameters as views into one contiguous buffer, with a
    matching gradient buffer, so one optimizer step is one kernel call over
    one array::

        fp = adamcore.FlatParams({"w": (784, 128), "b": 128, "out": w_init})
        opt = adamcore.Adam([fp.flat], lr=1e-3)
        for x, y in batches:
            np.matmul(x.T, delta, out=fp.grads["w"])   # grads written into views
            fp.grads["b"][...] = delta.sum(0)
            ...
            opt.step([fp.flat_grad])                    # every param updated in place

    ``spec`` is a dict ``name -> shape`` (or ``name -> array``, whose values
    are copied in, converted as ``np.copyto`` does) or a list of shapes or
    arrays; a shape is an int or a tuple of ints. Params lie in spec's order,
    back to back, in ``flat``, a 1-D ``dtype`` array (float32 or float64)
    starting on a 64-byte line; ``flat_grad`` is its zero-initialised twin.
    ``params`` and ``grads`` are the C-contiguous views, shaped as asked: a
    read-only mapping by name for a dict spec, a tuple for a list. They are
    read-only because ``fp.grads["w"] = g`` would replace the view and write
    nothing into ``flat_grad``: write ``fp.grads["w"][...] = g``, or compute
    into it with ``out=``. ``fp[k]`` and ``fp.grad(k)`` give one view by name
    (or index), ``len(fp)`` counts params, iterating gives the names (or
    indices). The buffers are never reallocated, so views stay valid.
    ``fp.split(a)`` gives the same views of any array laid out like ``flat``,
    e.g. the optimizer's state: ``fp.split(opt.state[0]["exp_avg"])["w"]``.

    The step is element-wise, so it gives bitwise the same params and state
    as stepping the separate arrays with the same options.

    When to use it: many small tensors (layers' weights and biases), where an
    optimizer over separate arrays pays per-array work every step; for a few
    large tensors it saves nothing. The trade-offs: every param has one dtype;
    the optimizer sees one param, so its options (lr, weight decay, amsgrad)
    apply to all of them: per-param groups over one buffer are not possible.
    To exempt biases from weight decay, use two FlatParams as two groups
    (``AdamW([{"params": [decayed.flat]}, {"params": [rest.flat],
    "weight_decay": 0.0}])``). Grads are written into ``flat_grad``, not
    returned as new arrays; a param without a grad this step needs zeros in
    its view (``fp.grads[k][...] = 0``), not None, and then still decays and
    moves with its moments, unlike a skipped param.
    """

    def __init__(self, spec, dtype=np.float32):
        dtype = np.dtype(dtype)
        if dtype not in _validate.FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        if isinstance(spec, dict):
            for key in spec:
                if not isinstance(key, str):
                    raise TypeError(f"spec's names must be str, got {key!r}")
            self._names = list(spec)
            entries = [(f"spec[{k!r}]", v) for k, v in spec.items()]
        elif isinstance(spec, list):
            self._names = None
            entries = [(f"spec[{i}]", v) for i, v in enumerate(spec)]
        else:  # a tuple would be ambiguous: one shape, or a list of them?
            raise TypeError("spec must be a dict name -> shape or array, or a list of shapes "
                            f"or arrays (one param of shape (3, 4): [(3, 4)]), "
                            f"got {type(spec).__name__}")
        if not entries:
            raise ValueError("spec is empty: FlatParams needs at least one param")
        shapes, values = zip(*(_shape_of(name, entry) for name, entry in entries))
        self._shapes = list(shapes)
        self._flat = _alloc.aligned_zeros(sum(map(math.prod, shapes)), dtype)
        self._flat_grad = _alloc.aligned_zeros(self._flat.size, dtype)
        self._params = self.split(self._flat)
        self._grads = self.split(self._flat_grad)
        for key, value in zip(self, values):
            if value is not None:
                np.copyto(self._params[key], value)

    @property
    def flat(self):
        """Every param, back to back: the one array to give the optimizer."""
        return self._flat

    @property
    def flat_grad(self):
        """Every grad, laid out like ``flat``: the one array to give ``step``."""
        return self._flat_grad

    @property
    def params(self):
        """The param views: by name (read-only mapping) or in order (tuple)."""
        return self._params

    @property
    def grads(self):
        """The grad views, like ``params``; write into them, never replace them."""
        return self._grads

    def split(self, array):
        """Views of ``array`` (1-D, laid out like ``flat``) shaped as the params."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"array must be a numpy.ndarray, got {type(array).__name__}")
        if array.shape != self._flat.shape:
            raise ValueError(f"array must be 1-D with {self._flat.size} elements, laid out "
                             f"like flat; got shape {array.shape}")
        views, lo = [], 0
        for shape in self._shapes:
            hi = lo + math.prod(shape)
            views.append(array[lo:hi].reshape(shape))
            lo = hi
        if self._names is None:
            return tuple(views)
        return types.MappingProxyType(dict(zip(self._names, views)))

    def __getitem__(self, key):
        return self._params[key]

    def grad(self, key):
        return self._grads[key]

    def __len__(self):
        return len(self._shapes)

    def __iter__(self):
        return iter(self._names if self._names is not None else range(len(self._shapes)))

    def __repr__(self):
        return (f"FlatParams({len(self)} params, {self._flat.size} {self._flat.dtype} "
                "elements)")
