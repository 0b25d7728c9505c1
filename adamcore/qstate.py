"""Low-precision optimizer state (Adam's ``state_dtype``): the formats, the
8-bit code maps, and the NumPy mirror of every rounding the kernel does
(csrc/lowp_body.h, csrc/qmaps.c), bit for bit.

Formats (``FORMATS``, by ``state_dtype``), per element of a param of n
elements, the bytes of m and v (and AMSGrad's max):

- ``None``: the param's dtype (8 bytes for float32 params, 16 for float64).
- ``"bfloat16"``: two bytes each, arrays of ``ml_dtypes.bfloat16`` (the
  ``bfloat16`` extra). The arithmetic is the param's dtype; a new m or v is
  stored by stochastic rounding: the float32 value's low 16 bits plus 16
  random bits carry into the kept half with probability (low bits / 2**16),
  so the stored value is unbiased and v can shrink by less than half an
  ulp. The random bits are a counter-based hash (``element_bits``) of the
  group's ``seed``, the param's index, the step and the element's index in
  the param: the same for any thread count, SIMD level and implementation.
- ``"int8"``: one byte each (a code of a 256-entry map) and one float32
  absmax per block of ``QBLOCK`` consecutive elements of the param
  (``<name>_absmax``). m uses the signed map, v and its max the unsigned
  one (``SIGNED_MAP``, ``UNSIGNED_MAP``: bitsandbytes' dynamic maps, as
  literal float32 bit patterns; ``QMAP_ID`` names them). A value x is
  stored as the code nearest x / absmax (``encode``). Params of fewer than
  ``MIN_8BIT_SIZE`` elements keep their dtype's state, as bitsandbytes'
  ``min_8bit_size``.
"""

from dataclasses import dataclass

import numpy as np

from adamcore import _alloc

QBLOCK = 256           # csrc/adamcore.h: ADAMCORE_QBLOCK
MIN_8BIT_SIZE = 4096   # smaller params keep their dtype's state
QMAP_ID = "bitsandbytes-dynamic-8bit"  # the maps below; saved with the state

SIGNED_MAP = np.array([
    0xbf7e3333, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333, 0xbf68999a, 0xbf650000,
    0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a, 0xbf530000, 0xbf4f6666, 0xbf4bcccd, 0xbf483333,
    0xbf44999a, 0xbf410000, 0xbf3d6666, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6666,
    0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a,
    0xbf0b0000, 0xbf076666, 0xbf03cccc, 0xbf003333, 0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a,
    0xbedc6666, 0xbed53333, 0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000,
    0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999, 0xbe6f3333, 0xbe60cccd,
    0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334,
    0xbdc9eb85, 0xbdc428f7, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c2a, 0xbda1999a,
    0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147b, 0xbd728f5d, 0xbd670a3d,
    0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3, 0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148,
    0xbcfeb852, 0xbce7ae15, 0xbcd0a3d7, 0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
    0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4,
    0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
    0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
    0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94, 0xb513a3b7, 0x00000000,
    0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
    0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
    0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
    0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
    0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
    0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
    0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
    0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
    0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
    0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
    0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
    0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
    0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666,
    0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
    0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
    0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000
], np.uint32).view(np.float32)

UNSIGNED_MAP = np.array([
    0x00000000, 0x34ae7baa, 0x35500998, 0x360e9b38, 0x3692ccf6, 0x36de4c51, 0x3714e5d5, 0x3783126e,
    0x37e171a0, 0x381fe868, 0x384f1800, 0x387e479a, 0x3896bb99, 0x38ae5364, 0x38c5eb31, 0x3906594b,
    0x394154ca, 0x397c5049, 0x399ba5e4, 0x39b923a2, 0x39d6a163, 0x39f41f22, 0x3a08ce71, 0x3a178d50,
    0x3a264c30, 0x3a350b10, 0x3a43c9ef, 0x3a5288d0, 0x3a6147af, 0x3a70068e, 0x3a7ec56e, 0x3a958106,
    0x3aba5e35, 0x3adf3b64, 0x3b020c4a, 0x3b147ae1, 0x3b26e978, 0x3b395810, 0x3b4bc6a7, 0x3b5e3540,
    0x3b70a3d7, 0x3b818937, 0x3b8ac082, 0x3b93f7cf, 0x3b9d2f1a, 0x3ba66666, 0x3baf9db2, 0x3bb8d4fd,
    0x3bc20c4a, 0x3bcb4395, 0x3bd47ae1, 0x3bddb22e, 0x3be6e978, 0x3bf020c5, 0x3bf9580f, 0x3c0147ae,
    0x3c05e354, 0x3c0a7ef9, 0x3c0f1aa0, 0x3c13b645, 0x3c1851eb, 0x3c1ced92, 0x3c218937, 0x3c2f5c2a,
    0x3c466667, 0x3c5d70a3, 0x3c747ae2, 0x3c85c28f, 0x3c9147af, 0x3c9ccccd, 0x3ca851eb, 0x3cb3d70b,
    0x3cbf5c29, 0x3ccae147, 0x3cd66667, 0x3ce1eb87, 0x3ced70a3, 0x3cf8f5c3, 0x3d023d70, 0x3d080000,
    0x3d0dc28f, 0x3d13851f, 0x3d1947af, 0x3d1f0a3d, 0x3d24cccd, 0x3d2a8f5c, 0x3d3051eb, 0x3d36147b,
    0x3d3bd70a, 0x3d41999a, 0x3d475c28, 0x3d4d1eb8, 0x3d52e147, 0x3d58a3d7, 0x3d5e6667, 0x3d6428f7,
    0x3d69eb87, 0x3d6fae15, 0x3d7570a3, 0x3d7b3333, 0x3d807ae2, 0x3d835c2a, 0x3d863d71, 0x3d891eb8,
    0x3d8c0000, 0x3d8ee148, 0x3d91c290, 0x3d94a3d7, 0x3d97851f, 0x3d9a6667, 0x3d9d47af, 0x3da028f6,
    0x3da30a3e, 0x3da5eb85, 0x3da8cccd, 0x3dabae15, 0x3dae8f5c, 0x3db170a4, 0x3db451eb, 0x3db73333,
    0x3dba147b, 0x3dbcf5c3, 0x3dbfd70b, 0x3dc2b852, 0x3dc5999a, 0x3dc87ae2, 0x3dcb5c29, 0x3dd40000,
    0x3de26666, 0x3df0cccd, 0x3dff3333, 0x3e06cccc, 0x3e0e0000, 0x3e153334, 0x3e1c6666, 0x3e23999a,
    0x3e2acccc, 0x3e320000, 0x3e393334, 0x3e406666, 0x3e47999a, 0x3e4ecccc, 0x3e560000, 0x3e5d3334,
    0x3e646666, 0x3e6b999a, 0x3e72cccc, 0x3e7a0000, 0x3e809999, 0x3e843333, 0x3e87cccd, 0x3e8b6666,
    0x3e8f0000, 0x3e92999a, 0x3e963333, 0x3e99cccc, 0x3e9d6666, 0x3ea10000, 0x3ea4999a, 0x3ea83333,
    0x3eabcccc, 0x3eaf6666, 0x3eb30000, 0x3eb6999a, 0x3eba3333, 0x3ebdcccc, 0x3ec16666, 0x3ec50000,
    0x3ec8999a, 0x3ecc3333, 0x3ecfcccc, 0x3ed36666, 0x3ed70000, 0x3eda999a, 0x3ede3333, 0x3ee1cccc,
    0x3ee56666, 0x3ee90000, 0x3eec999a, 0x3ef03333, 0x3ef3cccc, 0x3ef76666, 0x3efb0000, 0x3efe9999,
    0x3f01199a, 0x3f02e666, 0x3f04b333, 0x3f068000, 0x3f084ccc, 0x3f0a199a, 0x3f0be666, 0x3f0db334,
    0x3f0f8000, 0x3f114ccd, 0x3f13199a, 0x3f14e666, 0x3f16b334, 0x3f188000, 0x3f1a4ccd, 0x3f1c199a,
    0x3f1de666, 0x3f1fb334, 0x3f218000, 0x3f234ccd, 0x3f25199a, 0x3f26e666, 0x3f28b334, 0x3f2a8000,
    0x3f2c4ccd, 0x3f2e199a, 0x3f2fe666, 0x3f31b334, 0x3f338000, 0x3f354ccd, 0x3f37199a, 0x3f38e666,
    0x3f3ab334, 0x3f3c8000, 0x3f3e4ccd, 0x3f40199a, 0x3f41e666, 0x3f43b334, 0x3f458000, 0x3f474ccc,
    0x3f49199a, 0x3f4ae666, 0x3f4cb334, 0x3f4e8000, 0x3f504ccc, 0x3f52199a, 0x3f53e666, 0x3f55b334,
    0x3f578000, 0x3f594ccc, 0x3f5b199a, 0x3f5ce666, 0x3f5eb334, 0x3f608000, 0x3f624ccc, 0x3f64199a,
    0x3f65e666, 0x3f67b334, 0x3f698000, 0x3f6b4ccc, 0x3f6d199a, 0x3f6ee666, 0x3f70b334, 0x3f728000,
    0x3f744ccc, 0x3f76199a, 0x3f77e666, 0x3f79b334, 0x3f7b8000, 0x3f7d4ccc, 0x3f7f199a, 0x3f800000
], np.uint32).view(np.float32)


@dataclass(frozen=True)
class StateFormat:
    """How one param's state is stored: ``code`` is the kernel's
    (ADAMCORE_STATE_*), ``name`` the ``state_dtype`` that asks for it."""
    code: int
    name: object

    def is_native(self):
        return self.code == NATIVE.code


NATIVE = StateFormat(0, None)
BF16 = StateFormat(1, "bfloat16")
INT8 = StateFormat(2, "int8")
#: state_dtype -> format
FORMATS = {f.name: f for f in (NATIVE, BF16, INT8)}


def bfloat16():
    """NumPy's bfloat16 dtype (ml_dtypes), or an ImportError saying how to get it."""
    try:
        import ml_dtypes
    except ImportError:
        raise ImportError("state_dtype='bfloat16' needs the ml_dtypes package: "
                          "pip install 'adamcore[bfloat16]'") from None
    return np.dtype(ml_dtypes.bfloat16)


def format_of(state_dtype, param):
    """The format a param gets under a group's ``state_dtype``."""
    fmt = FORMATS[state_dtype]
    if fmt is INT8 and param.size < MIN_8BIT_SIZE:
        return NATIVE
    return fmt


def n_blocks(n):
    return -(-n // QBLOCK)


def scale_key(slot):
    """The state key of slot ``slot``'s absmax (int8 state)."""
    return slot + "_absmax"


# ---- the code maps ---------------------------------------------------------------

def thresholds(values):
    """t[k]: the smallest float32 >= the midpoint of values k and k + 1
    (exact in double), so code = #{t[k] <= q} is the nearest, ties up."""
    v = values.astype(np.float64)
    mid = (v[:-1] + v[1:]) * 0.5
    t = mid.astype(np.float32)
    return np.where(t.astype(np.float64) < mid, np.nextafter(t, np.float32(np.inf)), t)


SIGNED_THRESHOLDS = thresholds(SIGNED_MAP)
UNSIGNED_THRESHOLDS = thresholds(UNSIGNED_MAP)
SIGNED_ZERO = int(np.searchsorted(SIGNED_THRESHOLDS, np.float32(0), side="right"))
UNSIGNED_ZERO = int(np.searchsorted(UNSIGNED_THRESHOLDS, np.float32(0), side="right"))


def encode(q, signed):
    """The codes of float32 values q (csrc/qmaps.c: the rounding rule):
    the nearest map value, ties to the larger; NaN (and infinity, which a
    scaled value never is) to the code of zero."""
    thr, zero = ((SIGNED_THRESHOLDS, SIGNED_ZERO) if signed
                 else (UNSIGNED_THRESHOLDS, UNSIGNED_ZERO))
    codes = np.searchsorted(thr, q, side="right").astype(np.uint8)
    codes[~np.isfinite(q)] = zero
    return codes


def decode(codes, absmax, signed):
    """float32 values of codes (per block of QBLOCK, times its absmax)."""
    values = (SIGNED_MAP if signed else UNSIGNED_MAP)[codes.reshape(-1, order="A")]
    return values * np.repeat(absmax, QBLOCK)[:values.size]


def block_absmax(x):
    """Per block of QBLOCK, the largest |x| of float32 x, NaN if any is NaN
    (csrc/lowp_body.h: a max of the magnitudes' bit patterns)."""
    bits = np.zeros(n_blocks(x.size) * QBLOCK, np.uint32)
    bits[:x.size] = x.view(np.uint32) & np.uint32(0x7fffffff)
    return bits.reshape(-1, QBLOCK).max(axis=1).view(np.float32)


def quantize(x, signed):
    """(codes, absmax) of float32 x, as the kernel stores a block."""
    absmax = block_absmax(x)
    scale = np.repeat(np.where(absmax != 0, absmax, np.float32(1)), QBLOCK)[:x.size]
    return encode(x / scale, signed), absmax


# ---- bfloat16 and its rounding bits ----------------------------------------------

_M64 = (1 << 64) - 1


def _mix64(x):
    """splitmix64's finalizer (csrc/lowp_step.c: mix64), on Python ints."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def tensor_seed(seed, index):
    """The stream of param ``index`` of an optimizer whose group has ``seed``."""
    return _mix64((seed + (index + 1) * 0x9E3779B97F4A7C15) & _M64)


def call_key(tensor_seed, step):
    """The key of one step of one tensor (csrc/lowp_step.c: run_blocks)."""
    return _mix64(tensor_seed ^ _mix64(step))


def _fmix32(x):
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    return x


def element_bits(key, n):
    """The 32 random bits of elements 0..n-1 under call key ``key``
    (csrc/lowp_internal.h: adamcore_element_bits)."""
    i = np.arange(n, dtype=np.uint64)
    x = _fmix32((i & np.uint64(0xFFFFFFFF)).astype(np.uint32) * np.uint32(0x9E3779B1)
                + np.uint32(key & 0xFFFFFFFF))
    x += (i >> np.uint64(32)).astype(np.uint32) * np.uint32(0x7FEB352D) + np.uint32(key >> 32)
    return _fmix32(x)


def bf16_round(x, r):
    """float32 x to bfloat16 bit patterns (uint16) by stochastic rounding
    with 16 random bits r per element; NaN stays a quiet NaN."""
    u = x.view(np.uint32)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    with np.errstate(over="ignore"):
        rounded = (u + r) >> np.uint32(16)
    return np.where(nan, (u >> np.uint32(16)) | np.uint32(0x40), rounded).astype(np.uint16)


def bf16_value(bits):
    """float32 values of bfloat16 bit patterns (exact)."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def bf16_nearest(x):
    """float32 x to bfloat16 bit patterns, round to nearest even (used to
    convert state, never by a step)."""
    u = x.astype(np.float32).view(np.uint32)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    with np.errstate(over="ignore"):
        rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return np.where(nan, (u >> np.uint32(16)) | np.uint32(0x40), rounded).astype(np.uint16)


# ---- state arrays ----------------------------------------------------------------

def storage_dtype(fmt, param_dtype):
    """The dtype of a slot's array in format ``fmt``."""
    if fmt is BF16:
        return bfloat16()
    return np.dtype(np.uint8) if fmt is INT8 else np.dtype(param_dtype)


def stored_format(arrays, first_slot):
    """The format a param's state arrays are in (read off the first slot's dtype)."""
    a = arrays.get(first_slot)
    if not isinstance(a, np.ndarray):  # step counts only (SGD without momentum), or not an
        return NATIVE                  # array: the checks of the step refuse it as such
    dtype = a.dtype
    if dtype == np.uint8:
        return INT8
    return BF16 if dtype.itemsize == 2 and dtype.name == "bfloat16" else NATIVE


def _order(param):
    return "F" if param.flags.f_contiguous and not param.flags.c_contiguous else "C"


def new_arrays(fmt, slot, params):
    """For each param, ``{slot: array[, slot_absmax: array]}`` of zero state
    in ``fmt`` (not NATIVE: adamcore._alloc carves that), each array on a
    64-byte line, in the param's memory layout."""
    out = []
    for p in params:
        flat = _alloc.aligned_zeros(p.size, storage_dtype(fmt, p.dtype))
        st = {slot: flat.reshape(p.shape, order=_order(p))}
        if fmt is INT8:
            flat.fill(SIGNED_ZERO if slot == "exp_avg" else UNSIGNED_ZERO)
            st[scale_key(slot)] = _alloc.aligned_zeros(n_blocks(p.size), np.float32)
        out.append(st)
    return out


def is_signed(slot):
    """Which map a slot's codes use: m is signed, v and its max unsigned."""
    return slot == "exp_avg"


def values(arrays, slot, dtype):
    """A slot's state as values of ``dtype`` (a new array; exact for
    bfloat16 and native state, the dequantized values for int8)."""
    a = arrays[slot]
    if a.dtype == np.uint8:
        v = decode(a, arrays[scale_key(slot)], is_signed(slot))
        return v.astype(dtype).reshape(a.shape, order=_order(a))
    return a.astype(dtype)


def convert(arrays, slots, fmt, param):
    """A param's state ``arrays`` converted to format ``fmt``: decoded to
    values, then rounded to nearest (bfloat16: even; int8: the nearest code
    of each block). Explicit (load_state_dict(..., convert=True)), never a
    step's rounding."""
    out = {}
    for slot in slots:
        if slot not in arrays:
            continue
        x = values(arrays, slot, np.float32 if not fmt.is_native() else param.dtype)
        if fmt.is_native():
            out[slot] = x
            continue
        (new,) = new_arrays(fmt, slot, [param])
        flat = x.reshape(-1, order="A")
        if fmt is BF16:
            new[slot].reshape(-1, order="A").view(np.uint16)[:] = bf16_nearest(flat)
        else:
            codes, absmax = quantize(flat, is_signed(slot))
            new[slot].reshape(-1, order="A")[:] = codes
            new[scale_key(slot)][:] = absmax
        out.update(new)
    return out


def keys_of(fmt, slots):
    """The state keys of the given slots in ``fmt``."""
    if fmt is INT8:
        return [k for s in slots for k in (s, scale_key(s))]
    return list(slots)


def check_entry(i, arrays, slots, fmt, param, qmap=None):
    """A saved state entry's arrays (``slots`` present) in format ``fmt``,
    against param ``param``: the map id, dtypes, shapes. Raises ValueError."""
    if fmt is INT8 and qmap != QMAP_ID:
        raise ValueError(f"state[{i}]['qmap'] must be {QMAP_ID!r} (the code maps of this "
                         f"adamcore), got {qmap!r}")
    if fmt is not INT8 and qmap is not None:
        raise ValueError(f"state[{i}] has a 'qmap' but holds no int8 state")
    want = storage_dtype(fmt, param.dtype)
    for slot in slots:
        a = arrays[slot]
        if a.dtype != want or a.shape != param.shape:
            raise ValueError(f"state[{i}]['{slot}'] must be a {want} array of shape "
                             f"{param.shape} like params[{i}] ({fmt.name or 'its dtype'} "
                             f"state), got {a.dtype} array of shape {a.shape}")
        if fmt is INT8:
            s = arrays[scale_key(slot)]
            blocks = n_blocks(param.size)
            if s.dtype != np.float32 or s.shape != (blocks,):
                raise ValueError(f"state[{i}]['{scale_key(slot)}'] must be a float32 array "
                                 f"of shape ({blocks},), got {s.dtype} array of shape {s.shape}")
