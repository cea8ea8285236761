/* Plain float C kernels of the float reference network (benchmarks/mcu_anchors.py). NHWC, one
 * image, stride-1 convolutions with zero padding, 2x2/2 max-pool. */
#ifndef KBNN_FLOAT_KERNELS_H
#define KBNN_FLOAT_KERNELS_H
#include <stdint.h>

void f32_conv(const float *in, int h, int w, int cin, const float *weights, int kh, int kw,
              int cout, int pad, float pad_value, float *out);
void f32_dense(const float *in, int n_in, const float *weights, int n_out, float *out);
void f32_maxpool2(const float *in, int h, int w, int c, float *out);
void f32_batchnorm(float *x, int pixels, int c, const float *scale, const float *shift);
void f32_sign(float *x, int n);
void f32_from_pixels(const uint8_t *pixels, int n, float *out);
#endif
