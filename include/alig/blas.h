/*
 * alig/blas.h -- which OpenBLAS kernels the GEMMs run on.
 *
 * A DYNAMIC_ARCH OpenBLAS picks its kernels when it is loaded, from the CPU's
 * family and model. A CPU newer than the library may be unknown to it, and
 * OpenBLAS before 0.3.25 then falls back to its Prescott (SSE3) kernels on
 * Intel (OpenBLAS issue #4267), whatever the CPU can do: Debian 12's 0.3.21
 * does this on Emerald Rapids Xeons, where sgemm runs 4x slower than on its
 * SkylakeX (AVX-512) kernels. The choice can only be changed through
 * OPENBLAS_CORETYPE in the environment before the library loads, so
 * alig-train sets it and executes itself again, before MPI_Init.
 */
#ifndef ALIG_BLAS_H
#define ALIG_BLAS_H

/* Vector instruction levels of an x86-64 CPU or of OpenBLAS kernels. */
enum { ALIG_ISA_SSE = 0, ALIG_ISA_AVX = 1, ALIG_ISA_AVX2 = 2, ALIG_ISA_AVX512 = 3 };

/* The level this CPU (and its OS) supports: AVX-512 needs F, BW, DQ and VL; AVX2 needs FMA. */
int alig_cpu_isa(void);

/* The level of OpenBLAS's kernels named `core` (openblas_get_corename()), -1 if unknown. */
int alig_blas_core_isa(const char *core);

/*
 * The OPENBLAS_CORETYPE to ask for when OpenBLAS chose `core` on a CPU of
 * level `cpu_isa`: the kernels of that level, or NULL to keep `core` (it is
 * as good as the CPU allows, or it is a name we do not know).
 */
const char *alig_blas_better_core(const char *core, int cpu_isa);

/*
 * Call first thing in main (before MPI_Init: no MPI or BLAS state exists yet).
 * When OPENBLAS_CORETYPE is unset, OpenBLAS is a DYNAMIC_ARCH build and
 * alig_blas_better_core names better kernels, sets OPENBLAS_CORETYPE and
 * ALIG_BLAS_CHOSEN (OpenBLAS's own choice, for the log) and executes its
 * own file (readlink /proc/self/exe) again with the same arguments; the
 * second run takes both variables out of its environment again. Returns only when nothing is to
 * change, in the second run, or when the exec failed (the process then goes
 * on with OpenBLAS's choice). An OPENBLAS_CORETYPE set by the user is never
 * touched.
 */
void alig_blas_choose_kernels(char **argv);

/* OpenBLAS's own choice when alig_blas_choose_kernels replaced it, else NULL. */
const char *alig_blas_replaced(void);

/* One line for the start-up log: the library, its kernels, and who chose them. */
void alig_blas_describe(char *buf, int size);

#endif /* ALIG_BLAS_H */
