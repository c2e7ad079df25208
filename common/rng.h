// common/rng.h — the project's one random generator: splitmix64 (Steele, Lea & Flood 2014).
// Deterministic across machines and compilers, so a seed reproduces a data split, a training
// order, the per-step directions d and a sampled generation bit for bit. State is one uint64_t
// the caller owns (no global state: two users never disturb each other's sequence).
#ifndef BIPO_RNG_H
#define BIPO_RNG_H
#include <stdint.h>

// Next 64 random bits; advances *s.
static inline uint64_t bipo_rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform double in [0, 1) from the top 53 bits.
static inline double bipo_rng_uniform(uint64_t *s) {
    return (double)(bipo_rng_next(s) >> 11) / 9007199254740992.0;
}

#endif
