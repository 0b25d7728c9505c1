/* Compiler features the C core uses, behind one name each, so the sources
 * carry no bare GCC extension.
 *
 * - GCC and Clang (anything defining __GNUC__): exactly what the code spelled
 *   out before, so the generated code is the same.
 * - MSVC (untested; no wheel is built with it): the nearest equivalents, and
 *   no SIMD levels above baseline, since MSVC has no per-function target
 *   attribute. ADAMCORE_X86 stays undefined there, so the AVX2 and AVX-512
 *   kernels are not built and the CPU probe reports baseline only.
 */
#ifndef ADAMCORE_COMPAT_H
#define ADAMCORE_COMPAT_H

#if defined(__GNUC__)

/* Use as `static ADAMCORE_ALWAYS_INLINE void f(...)`: the bodies must inline
 * into each SIMD level's wrapper to be compiled for its target. */
#define ADAMCORE_ALWAYS_INLINE inline __attribute__((always_inline))
/* p, which the caller knows is n-byte aligned (as a void *). */
#define ADAMCORE_ASSUME_ALIGNED(p, n) __builtin_assume_aligned(p, n)
/* Ask for the cache line at p, to be written (rows.c). */
#define ADAMCORE_PREFETCH_W(p) __builtin_prefetch(p, 1, 3)
/* Relaxed atomic load and store of an int. */
#define ADAMCORE_LOAD_INT_RELAXED(p) __atomic_load_n(p, __ATOMIC_RELAXED)
#define ADAMCORE_STORE_INT_RELAXED(p, v) __atomic_store_n(p, v, __ATOMIC_RELAXED)

#if defined(__x86_64__) || defined(_M_X64)
/* x86-64 with the AVX2 and AVX-512 levels built. */
#define ADAMCORE_X86 1
/* The function attributes of the SIMD levels above baseline. */
#define ADAMCORE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define ADAMCORE_TARGET_AVX512 \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=512")))
/* The CPU probe: call ADAMCORE_CPU_INIT() once before the tests. */
#define ADAMCORE_CPU_INIT() __builtin_cpu_init()
#define ADAMCORE_CPU_HAS_AVX512()                                             \
    (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && \
     __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
#define ADAMCORE_CPU_HAS_AVX2() (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
#endif

#elif defined(_MSC_VER)

#include <intrin.h>
#define ADAMCORE_ALWAYS_INLINE __forceinline
#define ADAMCORE_ASSUME_ALIGNED(p, n) ((void *)(p))
#define ADAMCORE_PREFETCH_W(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
/* int and long are both 32-bit on Windows; the Interlocked calls are atomic
 * (and stronger than relaxed, which is allowed). */
#define ADAMCORE_LOAD_INT_RELAXED(p) ((int)_InterlockedOr((volatile long *)(p), 0))
#define ADAMCORE_STORE_INT_RELAXED(p, v) \
    ((void)_InterlockedExchange((volatile long *)(p), (long)(v)))
/* MSVC's C mode before /std:c11 spells restrict as __restrict. */
#if !defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L
#define restrict __restrict
#endif

#else
#error "adamcore's C core needs GCC, Clang or MSVC (csrc/compat.h)"
#endif

#ifndef ADAMCORE_X86
/* No SIMD levels above baseline: the probe finds none. */
#define ADAMCORE_CPU_INIT() ((void)0)
#define ADAMCORE_CPU_HAS_AVX512() 0
#define ADAMCORE_CPU_HAS_AVX2() 0
#endif

#endif /* ADAMCORE_COMPAT_H */
