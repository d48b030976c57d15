/*
 * alig/rng.h -- the project's own seeded PRNG (xoshiro256**, seeded by splitmix64).
 *
 * Every random choice in a run (initial weights, the per-epoch data order)
 * comes from a generator seeded by (seed, stream), so results depend only on
 * the config seed, never on rand(), the clock or the number of ranks.
 */
#ifndef ALIG_RNG_H
#define ALIG_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4]; /* xoshiro256** state; never all zero */
} alig_rng_t;

/* Streams: distinct uses of one seed never share a sequence. */
enum {
    ALIG_STREAM_INIT = 1,        /* parameter initialisation */
    ALIG_STREAM_EPOCH = 2,       /* data order; the epoch number is mixed in */
    ALIG_STREAM_AUGMENT = 3,     /* random crop and flip; epoch and sample index mixed in */
    ALIG_STREAM_DROPOUT = 4      /* dropout masks; step, sample index and layer mixed in */
};

/* Seed from (seed, stream); equal inputs give equal sequences on every platform. */
void alig_rng_seed(alig_rng_t *r, uint64_t seed, uint64_t stream);

/* Next 64 random bits. */
uint64_t alig_rng_next(alig_rng_t *r);

/* Uniform double in [0, 1) with 53 random bits. */
double alig_rng_uniform(alig_rng_t *r);

/* Standard normal (Box-Muller; uses two uniforms per call, no cached value). */
double alig_rng_normal(alig_rng_t *r);

/* Uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t alig_rng_below(alig_rng_t *r, uint64_t n);

/*
 * The global data order of one epoch: perm[0..n) is a permutation of 0..n-1
 * drawn by Fisher-Yates from the stream (seed, ALIG_STREAM_EPOCH, epoch).
 * Every rank computes the same permutation.
 */
void alig_epoch_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm);

#endif /* ALIG_RNG_H */
