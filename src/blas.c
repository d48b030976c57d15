/*
 * blas.c -- choose OpenBLAS's kernels when it does not know the CPU
 * (alig/blas.h).
 */
#include "alig/blas.h"

#include <cblas.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int alig_cpu_isa(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return ALIG_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return ALIG_ISA_AVX2;
    if (__builtin_cpu_supports("avx"))
        return ALIG_ISA_AVX;
#endif
    return ALIG_ISA_SSE;
}

/* OpenBLAS 0.3.21's x86-64 core names (driver/others/dynamic.c) by kernel level */
#define MAX_CORES 16
static const char *const cores_[][MAX_CORES] = {
    [ALIG_ISA_SSE] = {"Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom", "Core2",
                      "Penryn", "Dunnington", "Nehalem", "Athlon", "Opteron", "Opteron(SSE3)",
                      "Barcelona", "Nano", "Bobcat"},
    [ALIG_ISA_AVX] = {"Sandybridge", "Bulldozer", "Piledriver", "Steamroller"},
    [ALIG_ISA_AVX2] = {"Haswell", "Zen", "Excavator"},
    [ALIG_ISA_AVX512] = {"SkylakeX", "Cooperlake", "SapphireRapids"},
};

int alig_blas_core_isa(const char *core)
{
    if (!core)
        return -1;
    for (int isa = ALIG_ISA_SSE; isa <= ALIG_ISA_AVX512; isa++)
        for (int i = 0; i < MAX_CORES && cores_[isa][i]; i++)
            if (!strcasecmp(core, cores_[isa][i]))
                return isa;
    return -1;
}

const char *alig_blas_better_core(const char *core, int cpu_isa)
{
    int have = alig_blas_core_isa(core);
    if (have < 0 || cpu_isa <= have)
        return NULL;
    /* SkylakeX, not Cooperlake: its sgemm kernels are the same and it needs no BF16 */
    static const char *const best[] = {[ALIG_ISA_AVX] = "Sandybridge", [ALIG_ISA_AVX2] = "Haswell",
                                       [ALIG_ISA_AVX512] = "SkylakeX"};
    return cpu_isa > ALIG_ISA_AVX512 ? best[ALIG_ISA_AVX512] : best[cpu_isa];
}

/* set in the second run: OpenBLAS's own choice, which we replaced */
static char replaced_[64];
static int exec_failed_;

void alig_blas_choose_kernels(char **argv)
{
    const char *from = getenv("ALIG_BLAS_CHOSEN");
    if (from) { /* our second run: keep the facts, give back the user's environment */
        snprintf(replaced_, sizeof replaced_, "%s", from);
        unsetenv("ALIG_BLAS_CHOSEN");
        unsetenv("OPENBLAS_CORETYPE"); /* read once, when OpenBLAS was loaded */
        return;
    }
    const char *set = getenv("OPENBLAS_CORETYPE");
    if (set && *set) /* the user's choice */
        return;
    if (!strstr(openblas_get_config(), "DYNAMIC_ARCH")) /* the kernels are fixed at build */
        return;
    const char *core = openblas_get_corename();
    const char *better = alig_blas_better_core(core, alig_cpu_isa());
    if (!better)
        return;
    char own[64];
    snprintf(own, sizeof own, "%s", core);
    if (setenv("ALIG_BLAS_CHOSEN", own, 1) || setenv("OPENBLAS_CORETYPE", better, 1))
        return;
    fflush(NULL);
    /* the file itself, not /proc/self/exe: the process keeps its name (ps, top, pgrep) */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self[len] = '\0';
        execv(self, argv);
    }
    execv("/proc/self/exe", argv);
    /* no exec: go on with OpenBLAS's kernels and say so in the log */
    unsetenv("ALIG_BLAS_CHOSEN");
    unsetenv("OPENBLAS_CORETYPE");
    exec_failed_ = 1;
}

const char *alig_blas_replaced(void) { return replaced_[0] ? replaced_ : NULL; }

void alig_blas_describe(char *buf, int size)
{
    const char *config = openblas_get_config(), *core = openblas_get_corename();
    /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": the first two words */
    const char *sp = strchr(config, ' ');
    sp = sp ? strchr(sp + 1, ' ') : NULL;
    int len = sp ? (int)(sp - config) : (int)strlen(config);
    int n = snprintf(buf, (size_t)size, "%.*s, %s kernels", len, config, core);
    if (n < 0 || n >= size)
        return;
    const char *set = getenv("OPENBLAS_CORETYPE");
    static const char *const isa_name[] = {"SSE", "AVX", "AVX2", "AVX-512"};
    if (exec_failed_)
        snprintf(buf + n, (size_t)(size - n),
                 " (this CPU has %s, but restarting with OPENBLAS_CORETYPE set failed)",
                 isa_name[alig_cpu_isa()]);
    else if (replaced_[0])
        snprintf(buf + n, (size_t)(size - n),
                 " (chosen by alig-train: OpenBLAS took %s for this CPU, which has %s; "
                 "OPENBLAS_CORETYPE overrides)",
                 replaced_, isa_name[alig_cpu_isa()]);
    else if (set && *set && !strcasecmp(set, core))
        snprintf(buf + n, (size_t)(size - n), " (OPENBLAS_CORETYPE=%s in the environment)", set);
    else if (set) /* a name OpenBLAS maps to other kernels, or one it does not know */
        snprintf(buf + n, (size_t)(size - n),
                 " (OPENBLAS_CORETYPE='%s' in the environment, not a name of these kernels: "
                 "OpenBLAS took %s for it)", set, core);
}
