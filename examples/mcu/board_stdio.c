/* The example's board layer on stdio: digits and labels from two raw files written by
 * write_digits.py. Under qemu (mps2-an386) newlib's semihosting reads the host's files. */
#include <stdio.h>

#include "board.h"

static FILE *images, *labels;

int board_next_digit(uint8_t *image, int size, int *label) {
  unsigned char byte;
  if (images == NULL) {
    images = fopen("digits_images.bin", "rb");
    labels = fopen("digits_labels.bin", "rb");
    if (images == NULL) {
      board_report("cannot open digits_images.bin: run `make digits` first");
      return 0;
    }
  }
  if (fread(image, 1, (size_t)size, images) != (size_t)size) {
    return 0;
  }
  *label = (labels != NULL && fread(&byte, 1, 1, labels) == 1) ? byte : -1;
  return 1;
}

void board_report(const char *line) { printf("%s\n", line); }
