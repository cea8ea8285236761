/* Plain float C kernels, written for clarity like a hand port of the Keras model: the float
 * baseline of benchmarks/mcu_cost.py (single precision, the Cortex-M4F FPU does the math). */
#include "float_kernels.h"

void f32_from_pixels(const uint8_t *pixels, int n, float *out) {
  for (int i = 0; i < n; ++i) {
    out[i] = (float)pixels[i] * (1.0f / 255.0f);
  }
}

/* out[y][x][o] = sum_{i,j,c} in[y+i-pad][x+j-pad][c] * weights[i][j][c][o] (Keras HWIO order);
 * taps outside the image read pad_value (larq pads ±1 inputs with +1, others with 0). */
void f32_conv(const float *in, int h, int w, int cin, const float *weights, int kh, int kw,
              int cout, int pad, float pad_value, float *out) {
  int oh = h + 2 * pad - kh + 1, ow = w + 2 * pad - kw + 1;
  for (int y = 0; y < oh; ++y) {
    for (int x = 0; x < ow; ++x) {
      float *acc = out + (y * ow + x) * cout;
      for (int o = 0; o < cout; ++o) {
        acc[o] = 0.0f;
      }
      for (int i = 0; i < kh; ++i) {
        int iy = y + i - pad;
        for (int j = 0; j < kw; ++j) {
          int ix = x + j - pad;
          const float *wk = weights + (i * kw + j) * cin * cout;
          if (iy < 0 || iy >= h || ix < 0 || ix >= w) { /* SAME border: pad_value */
            for (int c = 0; pad_value != 0.0f && c < cin; ++c) {
              for (int o = 0; o < cout; ++o) {
                acc[o] += pad_value * wk[c * cout + o];
              }
            }
            continue;
          }
          const float *px = in + (iy * w + ix) * cin;
          for (int c = 0; c < cin; ++c) {
            for (int o = 0; o < cout; ++o) {
              acc[o] += px[c] * wk[c * cout + o];
            }
          }
        }
      }
    }
  }
}

void f32_dense(const float *in, int n_in, const float *weights, int n_out, float *out) {
  for (int o = 0; o < n_out; ++o) {
    out[o] = 0.0f;
  }
  for (int i = 0; i < n_in; ++i) {
    for (int o = 0; o < n_out; ++o) {
      out[o] += in[i] * weights[i * n_out + o];
    }
  }
}

void f32_maxpool2(const float *in, int h, int w, int c, float *out) {
  int oh = h / 2, ow = w / 2;
  for (int y = 0; y < oh; ++y) {
    for (int x = 0; x < ow; ++x) {
      for (int k = 0; k < c; ++k) {
        float m = in[((2 * y) * w + 2 * x) * c + k];
        float v = in[((2 * y) * w + 2 * x + 1) * c + k];
        m = v > m ? v : m;
        v = in[((2 * y + 1) * w + 2 * x) * c + k];
        m = v > m ? v : m;
        v = in[((2 * y + 1) * w + 2 * x + 1) * c + k];
        out[(y * ow + x) * c + k] = v > m ? v : m;
      }
    }
  }
}

/* Inference batch norm folded to x * scale + shift per channel. */
void f32_batchnorm(float *x, int pixels, int c, const float *scale, const float *shift) {
  for (int p = 0; p < pixels; ++p, x += c) {
    for (int k = 0; k < c; ++k) {
      x[k] = x[k] * scale[k] + shift[k];
    }
  }
}

/* larq's sign: +1 for x >= 0. */
void f32_sign(float *x, int n) {
  for (int i = 0; i < n; ++i) {
    x[i] = x[i] >= 0.0f ? 1.0f : -1.0f;
  }
}
