/*
 * check_main.c -- runs every Check suite; exit status 0 only if all pass.
 * Usage: check_alig [suite-name]   (CK_RUN_SUITE / CK_RUN_CASE also work)
 */
#include "check_suites.h"

#include "alig/blas.h"

#include <stdlib.h>
#include <string.h>

const char *test_tmpdir(void)
{
    const char *d = getenv("ALIG_TEST_TMP");
    return d && *d ? d : "/tmp";
}

int main(int argc, char **argv)
{
    alig_blas_choose_kernels(argv); /* the suites run on alig-train's kernels */
    Suite *(*suites[])(void) = {rng_suite, config_suite, data_suite, model_suite, optim_suite,
                                train_suite, layers_suite, datasets_suite, mpi_suite, reference_suite,
                                ckpt_suite, faults_suite, metrics_suite};
    SRunner *sr = NULL;
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        Suite *s = suites[i]();
        if (!sr)
            sr = srunner_create(s);
        else
            srunner_add_suite(sr, s);
    }
    srunner_run(sr, argc > 1 ? argv[1] : NULL, NULL, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
