/* Internal to the C core: low-precision optimizer state (lowp_step.c):
 * bfloat16 moments with stochastic rounding, and 8-bit blockwise moments. */
#ifndef ADAMCORE_LOWP_INTERNAL_H
#define ADAMCORE_LOWP_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include "adam_internal.h"

/* One code map (qmaps.c): its 256 values, the code of zero, and per bucket
 * (the top 16 bits of a float32) the code of the bucket's smallest float in
 * bits 0-7 and, in bits 8-24, the bucket's one threshold as the low 16 bits
 * of its float (0x10000: none), taken in the bucket's order (flipped for
 * negative floats, whose low bits grow away from zero). */
typedef struct {
    float values[256];
    uint32_t buckets[65536];
    uint8_t zero;
} adamcore_qmap;

/* [0] signed (exp_avg), [1] unsigned (exp_avg_sq, its max); built on first
 * use, thread-safe. */
const adamcore_qmap *adamcore_qmaps(void);

static ADAMCORE_ALWAYS_INLINE uint32_t adamcore_f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static ADAMCORE_ALWAYS_INLINE float adamcore_f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The code of q (qmaps.c: the rounding rule), from its bucket. */
static ADAMCORE_ALWAYS_INLINE uint8_t adamcore_encode(const uint32_t *buckets, float q)
{
    const uint32_t u = adamcore_f32_bits(q);
    const uint32_t e = buckets[u >> 16];
    const uint32_t low = (u & 0xffffu) ^ ((u >> 31) ? 0xffffu : 0u);
    return (uint8_t)((e & 0xffu) + (low >= (e >> 8)));
}

/* bfloat16: the top half of a float32. */
static ADAMCORE_ALWAYS_INLINE float adamcore_bf16_value(uint16_t h)
{
    return adamcore_f32_of((uint32_t)h << 16);
}

/* Stochastic rounding to bfloat16 with 16 random bits r: the magnitude's
 * dropped half plus r carries into the kept half with probability
 * (dropped / 2^16), for either sign (sign-magnitude). NaN stays a quiet NaN. */
static ADAMCORE_ALWAYS_INLINE uint16_t adamcore_bf16_round(float x, uint32_t r)
{
    const uint32_t u = adamcore_f32_bits(x);
    const uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
    return (uint16_t)(nan ? (u >> 16) | 0x40u : (u + r) >> 16);
}

/* The random bits of element i of a tensor whose call key is k (a
 * counter-based hash: two rounds of murmur3's finalizer over the element
 * index and the key; adamcore/qstate.py: element_bits). */
static ADAMCORE_ALWAYS_INLINE uint32_t adamcore_fmix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= x >> 13;
    x *= 0xc2b2ae35u;
    x ^= x >> 16;
    return x;
}

static ADAMCORE_ALWAYS_INLINE uint32_t adamcore_element_bits(uint32_t klo, uint32_t khi, int64_t i)
{
    uint32_t x = adamcore_fmix32((uint32_t)i * 0x9e3779b1u + klo);
    x += (uint32_t)((uint64_t)i >> 32) * 0x7feb352du + khi;
    return adamcore_fmix32(x);
}

/* Steps blocks [b0, b1) of tensor t (ADAMCORE_QBLOCK elements each, the last
 * one partial) on the calling thread; key is the tensor's call key
 * (lowp_step.c), used by bfloat16 state only. */
typedef void (*adamcore_lowp_fn)(const adamcore_tensor *t, int64_t b0, int64_t b1,
                                 const void *scalars, uint64_t key, int variant);

#define ADAMCORE_DECLARE_LOWP(level)                                                   \
    void adamcore_bf16_f32_##level(const adamcore_tensor *, int64_t, int64_t,           \
                                   const void *, uint64_t, int);                        \
    void adamcore_bf16_f64_##level(const adamcore_tensor *, int64_t, int64_t,           \
                                   const void *, uint64_t, int);                        \
    void adamcore_q8_f32_##level(const adamcore_tensor *, int64_t, int64_t,             \
                                 const void *, uint64_t, int);                          \
    void adamcore_q8_f64_##level(const adamcore_tensor *, int64_t, int64_t,             \
                                 const void *, uint64_t, int);

ADAMCORE_DECLARE_LOWP(baseline)
#ifdef ADAMCORE_X86
ADAMCORE_DECLARE_LOWP(avx2)
ADAMCORE_DECLARE_LOWP(avx512)
#endif

/* adam_step.c hands a call with low-precision state here. */
int adamcore_adam_lowp_step(const adamcore_tensor *tensors, int64_t n_tensors,
                            const adamcore_adam_hyper *h, int n_threads, int is_f64);

#endif /* ADAMCORE_LOWP_INTERNAL_H */
