/* kbnn measurement harness: runs kbnn_infer on every image of a raw file and prints one line per
 * image, "S <index> <argmax> <score 0> ... <score N-1>".
 *
 * The images are KBNN_INPUT_SIZE bytes each, back to back, in the file named by KBNN_INPUT_FILE
 * (read through semihosting under qemu, through stdio on a host).  On the Cortex-M build:
 *   - kbnn_harness_mark() is called right before and right after each inference; an instruction
 *     counter that snapshots at its address gives the instructions of the inference alone (the
 *     two back-to-back calls at start-up measure the cost of the mark itself);
 *   - the free stack below main's frame is painted with a pattern before each inference and
 *     scanned afterwards; "STACK <bytes>" is the deepest use by kbnn_infer over all images. */
#include <stdint.h>
#include <stdio.h>

#include "kbnn_model.h"

#ifndef KBNN_INPUT_FILE
#define KBNN_INPUT_FILE "kbnn_input.bin"
#endif

#if defined(__arm__)
#define KBNN_MEASURE_STACK 1
#define PAINT_WORD 0x5AA5C33Cu
#define PAINT_WINDOW_WORDS (48u * 1024u / 4u) /* stack that may be measured: 48 KiB */

static uint32_t *painted_low;

static inline uint32_t *stack_pointer(void) {
  uint32_t *sp;
  __asm volatile("mov %0, sp" : "=r"(sp));
  return sp;
}

/* Paints the window below this function's own frame (the 4 words right under its stack pointer
 * are left alone). Not inlined: the caller's frame stays untouched. */
__attribute__((noinline)) static void paint_stack(void) {
  uint32_t *top = stack_pointer() - 4;
  uint32_t *p = top - PAINT_WINDOW_WORDS;
  painted_low = p;
  while (p < top) {
    *p++ = PAINT_WORD;
  }
}

/* Lowest word no longer holding the pattern; painted_low itself means the window was too small. */
__attribute__((noinline)) static const uint32_t *lowest_touched(void) {
  const uint32_t *p = painted_low;
  while (*p == PAINT_WORD) {
    ++p;
  }
  return p;
}
#else
#define KBNN_MEASURE_STACK 0
#endif

/* Empty on purpose: its entry address is the instruction counter's marker. */
__attribute__((noinline, used)) void kbnn_harness_mark(void) { __asm volatile("" ::: "memory"); }

static uint8_t image[KBNN_INPUT_SIZE];

int main(void) {
  int32_t scores[KBNN_NUM_CLASSES];
  long index = 0;
#if KBNN_MEASURE_STACK
  long deepest = 0;
#endif
  FILE *file = fopen(KBNN_INPUT_FILE, "rb");
  if (file == NULL) {
    printf("ERROR cannot open %s\n", KBNN_INPUT_FILE);
    return 3;
  }
  kbnn_harness_mark();
  kbnn_harness_mark();
  while (fread(image, 1, sizeof image, file) == sizeof image) {
    int best;
#if KBNN_MEASURE_STACK
    uint32_t *frame = stack_pointer();
    paint_stack();
#endif
    kbnn_harness_mark();
    best = kbnn_infer(image, scores);
    kbnn_harness_mark();
#if KBNN_MEASURE_STACK
    {
      const uint32_t *low = lowest_touched();
      long used = (long)((const char *)frame - (const char *)low);
      if (low == painted_low) {
        printf("ERROR stack window of %u bytes overflowed\n", PAINT_WINDOW_WORDS * 4u);
        return 4;
      }
      if (used > deepest) {
        deepest = used;
      }
    }
#endif
    printf("S %ld %d", index, best);
    for (int k = 0; k < KBNN_NUM_CLASSES; ++k) {
      printf(" %ld", (long)scores[k]);
    }
    printf("\n");
    ++index;
  }
  fclose(file);
  printf("IMAGES %ld\n", index);
#if KBNN_MEASURE_STACK
  printf("STACK %ld\n", deepest);
#endif
  return 0;
}
