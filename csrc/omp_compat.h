/* A build without OpenMP (ADAMCORE_NO_OPENMP=1, or a compiler without it)
 * still compiles: the pragmas are ignored and these stand-ins say "1 thread". */
#ifndef ADAMCORE_OMP_COMPAT_H
#define ADAMCORE_OMP_COMPAT_H
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_max_threads(void) { return 1; }
#endif
#endif
