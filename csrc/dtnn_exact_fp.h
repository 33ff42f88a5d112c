/*
 * Floating-point contraction off for the rest of the including file: an a*b+c is
 * rounded twice, as the numpy twins round it, never fused into one FMA (which GCC
 * would do at -O3 wherever the target has FMA, e.g. -march=native or an AVX2 clone).
 * Include it first, before any code, in a kernel whose float32 results must match
 * its twin's bit for bit.
 */
#ifndef DTNN_EXACT_FP_H
#define DTNN_EXACT_FP_H
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#endif /* DTNN_EXACT_FP_H */
