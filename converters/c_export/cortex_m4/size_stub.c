/* Stand-in for a model in the size probe's baseline link: same API, does nothing. */
#include <stdint.h>

#include "kbnn_model.h"

int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]) {
  scores[0] = (int32_t)input[0];
  return 0;
}
