/*
 * rng.c -- xoshiro256** (Blackman & Vigna) seeded through splitmix64.
 */
#include "alig/rng.h"

#include <math.h>

static uint64_t splitmix64_(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl_(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void alig_rng_seed(alig_rng_t *r, uint64_t seed, uint64_t stream)
{
    /* Mix the stream in through one splitmix round so (seed, stream) pairs
     * that differ in either part start far apart. */
    uint64_t x = seed;
    uint64_t k = splitmix64_(&x) ^ (stream * 0xd1342543de82ef95ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64_(&k);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
}

uint64_t alig_rng_next(alig_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl_(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl_(s[3], 45);
    return result;
}

double alig_rng_uniform(alig_rng_t *r)
{
    return (double)(alig_rng_next(r) >> 11) * 0x1.0p-53;
}

double alig_rng_normal(alig_rng_t *r)
{
    double u1 = 1.0 - alig_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = alig_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t alig_rng_below(alig_rng_t *r, uint64_t n)
{
    /* Rejection: accept x below the largest multiple of n. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = alig_rng_next(r);
    while (x >= limit);
    return x % n;
}

void alig_epoch_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm)
{
    alig_rng_t r;
    alig_rng_seed(&r, seed ^ ((uint64_t)epoch * 0x9e3779b97f4a7c15ULL), ALIG_STREAM_EPOCH);
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)alig_rng_below(&r, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
