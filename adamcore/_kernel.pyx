# cython: language_level=3, boundscheck=False, wraparound=False, freethreading_compatible=True
"""Binding to the C kernels (csrc/): check everything, then call C with the
GIL released.

Checks run at C speed over the whole step before any kernel call, so a bad
tensor anywhere leaves every array untouched. When a check fails,
adamcore._validate finds and words the error, so this module and the NumPy
reference (adamcore.reference) refuse alike. The modules, one job each:

- _capi.pxi      the C API's declarations
- _config.pxi    OpenMP, SIMD levels, thread counts
- _spans.pxi     the overlap check and a plan's kept spans
- _hyper.pxi     a kind's hyperparameters into its C struct; the kernel call
- _tables.pxi    a step's tensor table: the per-tensor checks, the kernel calls
- _runner.pxi    the step: ``run(plan, ...)`` and ``step_buckets(buckets, ...)``
- _norm.pxi      gradient norms
- _rows.pxi      row gradients: coalescing, the row step, their norm
- _exchange.pxi  the ordered sum of adamcore.distributed's reduce-scatter
- _probe.pxi     the roofline probe
"""

from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport isfinite
from libc.stdint cimport INT64_MAX, int64_t, uint8_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcmp, memcpy, memset

cimport numpy as cnp

import numpy as np

from adamcore import _validate, kinds, qstate
from adamcore.plan import Bucket, Kind, check_buckets
from adamcore.rowgrad import Coalesced, RowGrad

cnp.import_array()

include "_capi.pxi"
include "_config.pxi"
include "_spans.pxi"
include "_hyper.pxi"
include "_tables.pxi"
include "_runner.pxi"
include "_norm.pxi"
include "_rows.pxi"
include "_exchange.pxi"
include "_probe.pxi"
