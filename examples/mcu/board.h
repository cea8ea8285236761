/* What the example needs from a board: the next raw 28x28 digit (and its label, when known).
 * board_stdio.c reads them from files (host, or qemu through semihosting); on a real board this
 * is where a camera or sensor driver fills the buffer. */
#ifndef KBNN_EXAMPLE_BOARD_H
#define KBNN_EXAMPLE_BOARD_H
#include <stdint.h>

/* Fills `image` (raw 0-255, HWC) and `*label` (-1 if unknown); returns 0 when there is no more. */
int board_next_digit(uint8_t *image, int size, int *label);
/* Reports one line of text (UART, semihosting, stdout). */
void board_report(const char *line);
#endif
