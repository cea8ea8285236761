/* The export-c API for the popcount benchmark layer (784 input bytes = 196 words, 10 scores). */
#ifndef KBNN_MODEL_H
#define KBNN_MODEL_H
#include <stdint.h>
#define KBNN_INPUT_SIZE 784
#define KBNN_NUM_CLASSES 10
int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]);
#endif
