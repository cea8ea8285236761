/* Popcount candidates for the Cortex-M4 (ARMv7E-M has no popcount instruction), measured inside
 * a binary dense layer of 10 outputs over 196 words (6,272 bits), i.e. 1,960 popcounts per
 * inference: score[c] = sum_k popcount(x[k] ^ w[c][k]).  Select with -DPOPCOUNT_IMPL=n:
 *   0 none (x & 1: the loop, loads and xor only, to subtract)
 *   1 SWAR with a multiply for the byte sum       5 __builtin_popcount (libgcc __popcountsi2)
 *   2 SWAR with shifts/adds only                  6 clear-lowest-bit loop (Kernighan)
 *   3 256-byte table, 4 lookups                   7 SWAR to byte counts + USADA8 accumulate
 *   4 16-entry nibble table, 8 lookups            8 SWAR to byte counts, summed once per 31 words
 * Weights come from popcount_weights.h (written by benchmarks/mcu_popcount.py). */
#include <string.h>

#include "kbnn_model.h"
#include "popcount_weights.h"

#define WORDS 196

static inline uint32_t bytes_counts(uint32_t x) { /* per-byte popcounts, each 0..8 */
  x = x - ((x >> 1) & 0x55555555u);
  x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
  return (x + (x >> 4)) & 0x0F0F0F0Fu;
}

#if POPCOUNT_IMPL == 0
#define POP(x) ((x) & 1u)
#elif POPCOUNT_IMPL == 1
#define POP(x) ((bytes_counts(x) * 0x01010101u) >> 24)
#elif POPCOUNT_IMPL == 2
static inline uint32_t pop_shift(uint32_t x) {
  x = bytes_counts(x);
  x += x >> 8;
  x += x >> 16;
  return x & 0x3Fu;
}
#define POP(x) pop_shift(x)
#elif POPCOUNT_IMPL == 3
static const uint8_t table8[256] = {
#define B2(n) n, n + 1, n + 1, n + 2
#define B4(n) B2(n), B2(n + 1), B2(n + 1), B2(n + 2)
#define B6(n) B4(n), B4(n + 1), B4(n + 1), B4(n + 2)
    B6(0), B6(1), B6(1), B6(2)};
#define POP(x) (table8[(x) & 0xFFu] + table8[((x) >> 8) & 0xFFu] + table8[((x) >> 16) & 0xFFu] + table8[(x) >> 24])
#elif POPCOUNT_IMPL == 4
static const uint8_t table4[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};
static inline uint32_t pop_nibble(uint32_t x) {
  uint32_t n = 0;
  for (int k = 0; k < 8; ++k, x >>= 4) n += table4[x & 0xFu];
  return n;
}
#define POP(x) pop_nibble(x)
#elif POPCOUNT_IMPL == 5
#define POP(x) ((uint32_t)__builtin_popcount(x))
#elif POPCOUNT_IMPL == 6
static inline uint32_t pop_loop(uint32_t x) {
  uint32_t n = 0;
  while (x) {
    x &= x - 1u;
    ++n;
  }
  return n;
}
#define POP(x) pop_loop(x)
#endif

#if POPCOUNT_IMPL == 7
static uint32_t row_count(const uint32_t *x, const uint32_t *w) {
  uint32_t acc = 0;
  for (int k = 0; k < WORDS; ++k) {
    uint32_t b = bytes_counts(x[k] ^ w[k]);
    __asm("usada8 %0, %1, %2, %0" : "+r"(acc) : "r"(b), "r"(0u));
  }
  return acc;
}
#elif POPCOUNT_IMPL == 8
static uint32_t row_count(const uint32_t *x, const uint32_t *w) {
  uint32_t total = 0;
  for (int k = 0; k < WORDS;) {
    uint32_t bytes = 0; /* each byte lane holds at most 31 * 8 = 248 */
    for (int end = k + 31 < WORDS ? k + 31 : WORDS; k < end; ++k) bytes += bytes_counts(x[k] ^ w[k]);
    bytes = (bytes & 0x00FF00FFu) + ((bytes >> 8) & 0x00FF00FFu); /* two 16-bit lanes */
    total += (bytes + (bytes >> 16)) & 0xFFFFu;
  }
  return total;
}
#else
static uint32_t row_count(const uint32_t *x, const uint32_t *w) {
  uint32_t acc = 0;
  for (int k = 0; k < WORDS; ++k) acc += POP(x[k] ^ w[k]);
  return acc;
}
#endif

int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]) {
  uint32_t x[WORDS];
  int best = 0;
  memcpy(x, input, sizeof x);
  for (int c = 0; c < KBNN_NUM_CLASSES; ++c) {
    scores[c] = (int32_t)row_count(x, popcount_weights[c]);
    if (scores[c] > scores[best]) best = c;
  }
  return best;
}
