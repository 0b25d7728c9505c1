"""Medians of repeated timings, after a warm-up, interleaved across rivals.

From idle, this machine runs the first tens of milliseconds of small steps
~1.8x slower, so every measurement starts with ``warmup_s`` of calls. Each
sample times enough calls to last ``sample_s``; the result is the median ns
per call over ``repeats`` samples. The machines are shared and their speed
drifts over seconds, so ``interleaved`` takes one sample of each rival in
turn: a slow spell hits all of them, and their ratios stay fair.
"""

import time


def _calls_per_sample(fn, sample_s, warmup_s):
    """Warm up, then the number of calls that lasts about ``sample_s``."""
    end = time.perf_counter() + warmup_s
    calls = 0
    t0 = time.perf_counter()
    while True:
        fn()
        calls += 1
        if time.perf_counter() >= end:
            break
    per_call = (time.perf_counter() - t0) / calls
    return max(1, int(sample_s / max(per_call, 1e-9)))


def _sample(fn, inner):
    start = time.perf_counter_ns()
    for _ in range(inner):
        fn()
    return (time.perf_counter_ns() - start) / inner


def interleaved(fns, repeats=7, sample_s=0.02, warmup_s=0.1):
    """Median ns per call of each function, sampling them in turn."""
    inner = [_calls_per_sample(fn, sample_s, warmup_s) for fn in fns]
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            samples[k].append(_sample(fn, inner[k]))
    return [sorted(s)[len(s) // 2] for s in samples]


def median_ns(fn, repeats=7, sample_s=0.02, warmup_s=0.1):
    return interleaved([fn], repeats, sample_s, warmup_s)[0]
