/* kbnn size probe: the smallest firmware that runs one inference (no newlib, no semihosting).
 * Linked once with the model and once with a stub kbnn_infer; the difference of the two
 * `arm-none-eabi-size` results is the flash and static RAM the model adds to a firmware. */
#include <stdint.h>

#include "kbnn_model.h"

volatile uint8_t kbnn_probe_input[KBNN_INPUT_SIZE];
volatile int kbnn_probe_result;

int main(void) {
  int32_t scores[KBNN_NUM_CLASSES];
  kbnn_probe_result = kbnn_infer((const uint8_t *)kbnn_probe_input, scores) + (int)scores[0];
  return 0;
}
