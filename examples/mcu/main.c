/* kbnn on a microcontroller: classify digits with the C that `kbnn export-c` wrote.
 * Only kbnn_model.h is needed from kbnn; no heap, no floating point, no other library. */
#include <stdint.h>
#include <stdio.h>

#include "board.h"
#include "kbnn_model.h"

static uint8_t image[KBNN_INPUT_SIZE];

int main(void) {
  int32_t scores[KBNN_NUM_CLASSES];
  long seen = 0, correct = 0;
  int label;
  char line[96];
  while (board_next_digit(image, KBNN_INPUT_SIZE, &label)) {
    int digit = kbnn_infer(image, scores);
    seen += 1;
    correct += digit == label;
    if (seen <= 5) {
      snprintf(line, sizeof line, "digit %ld: predicted %d (label %d)", seen - 1, digit, label);
      board_report(line);
    }
  }
  {
    long basis_points = seen ? (10000L * correct + seen / 2) / seen : 0; /* integer only */
    snprintf(line, sizeof line, "accuracy %ld/%ld = %ld.%02ld%%", correct, seen,
             basis_points / 100, basis_points % 100);
  }
  board_report(line);
  return 0;
}
