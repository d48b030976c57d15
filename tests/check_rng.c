/*
 * check_rng.c -- the seeded PRNG and the epoch permutation.
 */
#include "check_suites.h"

#include "alig/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(same_seed_same_sequence_other_stream_differs)
{
    alig_rng_t a, b, c;
    alig_rng_seed(&a, 42, 1);
    alig_rng_seed(&b, 42, 1);
    alig_rng_seed(&c, 42, 2);
    int same_c = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = alig_rng_next(&a);
        ck_assert_uint_eq(x, alig_rng_next(&b));
        same_c += x == alig_rng_next(&c);
    }
    ck_assert_int_eq(same_c, 0);
}
END_TEST

START_TEST(uniform_and_normal_moments)
{
    alig_rng_t r;
    alig_rng_seed(&r, 7, 1);
    int n = 200000;
    double su = 0, sn = 0, sn2 = 0;
    for (int i = 0; i < n; i++) {
        double u = alig_rng_uniform(&r);
        ck_assert(u >= 0.0 && u < 1.0);
        su += u;
        double z = alig_rng_normal(&r);
        sn += z;
        sn2 += z * z;
    }
    /* standard errors: 0.29/sqrt(n) = 6.5e-4 and 1/sqrt(n) = 2.2e-3; allow 5 sigma */
    ck_assert_double_eq_tol(su / n, 0.5, 3.3e-3);
    ck_assert_double_eq_tol(sn / n, 0.0, 1.1e-2);
    ck_assert_double_eq_tol(sn2 / n, 1.0, 1.6e-2);
}
END_TEST

START_TEST(below_is_in_range_and_covers)
{
    alig_rng_t r;
    alig_rng_seed(&r, 1, 1);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t k = alig_rng_below(&r, 7);
        ck_assert_uint_lt(k, 7);
        seen[k]++;
    }
    for (int k = 0; k < 7; k++)
        ck_assert_int_gt(seen[k], 800); /* expectation 1000 */
}
END_TEST

START_TEST(epoch_permutation_is_a_permutation_fixed_by_seed_and_epoch)
{
    int64_t n = 1000;
    int64_t *p = malloc(sizeof *p * n), *q = malloc(sizeof *q * n), *e = malloc(sizeof *e * n);
    alig_epoch_permutation(42, 3, n, p);
    alig_epoch_permutation(42, 3, n, q);
    alig_epoch_permutation(42, 4, n, e);
    char *hit = calloc((size_t)n, 1);
    int64_t fixed = 0, same_next_epoch = 0;
    for (int64_t i = 0; i < n; i++) {
        ck_assert_int_ge(p[i], 0);
        ck_assert_int_lt(p[i], n);
        ck_assert_int_eq(hit[p[i]], 0);
        hit[p[i]] = 1;
        ck_assert_int_eq(p[i], q[i]);
        fixed += p[i] == i;
        same_next_epoch += p[i] == e[i];
    }
    /* a random permutation has about one fixed point; identity would have n */
    ck_assert_int_lt(fixed, 10);
    ck_assert_int_lt(same_next_epoch, 10);
    free(p);
    free(q);
    free(e);
    free(hit);
}
END_TEST

Suite *rng_suite(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("rng");
    tcase_add_test(tc, same_seed_same_sequence_other_stream_differs);
    tcase_add_test(tc, uniform_and_normal_moments);
    tcase_add_test(tc, below_is_in_range_and_covers);
    tcase_add_test(tc, epoch_permutation_is_a_permutation_fixed_by_seed_and_epoch);
    suite_add_tcase(s, tc);
    return s;
}
