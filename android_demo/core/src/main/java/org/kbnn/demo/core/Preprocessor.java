package org.kbnn.demo.core;

/**
 * A canvas drawing (ARGB pixels, as {@code Bitmap.getPixels} returns them) → the model input.
 *
 * <p>MNIST-style, like the data set was made (LeCun et al. 1998): the ink's bounding box is
 * area-averaged into a {@code digitBox} square keeping the aspect ratio, then placed in the
 * input field so that its centre of mass is at the centre. This is the twin of kbnn's Python
 * {@code kbnn/apps/preprocessing.py}; both follow the same specification (written out there) with
 * integer arithmetic up to the normalisation and float32 after it, so they are bit-identical
 * (checked by {@code PreprocessorGoldenTest} on vectors Python writes).
 */
public final class Preprocessor {
    private final Config config;

    public Preprocessor(Config config) {
        if (config == null) {
            throw new IllegalArgumentException("config must not be null");
        }
        this.config = config;
    }

    public Config config() {
        return config;
    }

    /** Preprocessing parameters; the app takes them from model.json ({@link ModelSpec#preprocessing}). */
    public static final class Config {
        public final int height;
        public final int width;
        public final int digitBox;
        public final int inkThreshold;
        public final float scale;
        public final float mean;
        public final float std;

        public Config(int height, int width, int digitBox, int inkThreshold, float scale, float mean, float std) {
            if (height < 1 || width < 1) {
                throw new IllegalArgumentException("height and width must be >= 1, got " + height + "x" + width);
            }
            if (digitBox < 1 || digitBox > Math.min(height, width)) {
                throw new IllegalArgumentException("digitBox must be in 1.." + Math.min(height, width) + ", got " + digitBox);
            }
            if (inkThreshold < 0 || inkThreshold > 254) {
                throw new IllegalArgumentException("inkThreshold must be in 0..254, got " + inkThreshold);
            }
            if (!(scale > 0) || Float.isInfinite(scale) || !(std > 0) || Float.isInfinite(std)
                    || Float.isNaN(mean) || Float.isInfinite(mean)) {
                throw new IllegalArgumentException("scale and std must be positive and finite, mean finite; got scale="
                        + scale + " mean=" + mean + " std=" + std);
            }
            this.height = height;
            this.width = width;
            this.digitBox = digitBox;
            this.inkThreshold = inkThreshold;
            this.scale = scale;
            this.mean = mean;
            this.std = std;
        }

        /** MNIST: 28×28 input, 20×20 digit box, no threshold, x = v / 255. */
        public static Config mnist() {
            return new Config(28, 28, 20, 0, 255f, 0f, 1f);
        }
    }

    /** What the model sees: the 0..255 field (for display) and the normalised float input. */
    public static final class Result {
        /** Field values 0..255, row-major, height × width. */
        public final int[] field;
        /** Model input, row-major, height × width (one channel). */
        public final float[] input;
        /** True when the drawing had no ink (the input is then the blank field). */
        public final boolean empty;

        Result(int[] field, float[] input, boolean empty) {
            this.field = field;
            this.input = input;
            this.empty = empty;
        }
    }

    /** Steps 1–5: ARGB pixels (row-major, width × height) → field and model input. */
    public Result process(int[] argb, int width, int height, boolean invert) {
        int[] ink = ink(argb, width, height, invert, config.inkThreshold);
        int[] field = centre(ink, width, height);
        boolean empty = true;
        for (int v : ink) {
            if (v != 0) {
                empty = false;
                break;
            }
        }
        return new Result(field, normalize(field), empty);
    }

    /**
     * Step 1: ink intensity 0..255 per pixel (0 = background); {@code invert} for dark strokes on
     * a light canvas. Values at or below {@code inkThreshold} become 0.
     */
    public static int[] ink(int[] argb, int width, int height, boolean invert, int inkThreshold) {
        if (argb == null) {
            throw new IllegalArgumentException("argb must not be null");
        }
        if (width < 1 || height < 1 || (long) width * height != argb.length) {
            throw new IllegalArgumentException("argb has " + argb.length + " pixels, not width*height = "
                    + width + "*" + height);
        }
        int[] out = new int[argb.length];
        for (int i = 0; i < argb.length; i++) {
            int p = argb[i];
            int a = (p >>> 24) & 0xFF;
            int r = (p >>> 16) & 0xFF;
            int g = (p >>> 8) & 0xFF;
            int b = p & 0xFF;
            int lum = (299 * r + 587 * g + 114 * b + 500) / 1000;
            int v = invert
                    ? 255 - (lum * a + 255 * (255 - a) + 127) / 255
                    : (lum * a + 127) / 255;
            out[i] = v > inkThreshold ? v : 0;
        }
        return out;
    }

    /** Steps 2–4: ink (width × height) → field (config height × width), 0..255. */
    public int[] centre(int[] ink, int width, int height) {
        int fh = config.height;
        int fw = config.width;
        int[] field = new int[fh * fw];
        int x0 = width;
        int x1 = -1;
        int y0 = height;
        int y1 = -1;
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                if (ink[y * width + x] != 0) {
                    if (x < x0) {
                        x0 = x;
                    }
                    if (x > x1) {
                        x1 = x;
                    }
                    if (y < y0) {
                        y0 = y;
                    }
                    y1 = y;
                }
            }
        }
        if (x1 < 0) {
            return field; // no ink
        }
        int bw = x1 - x0 + 1;
        int bh = y1 - y0 + 1;
        int m = Math.max(bw, bh);
        int box = config.digitBox;
        int ow = (int) Math.max(1, (2L * bw * box + m) / (2L * m));
        int oh = (int) Math.max(1, (2L * bh * box + m) / (2L * m));
        int[] resampled = resample(ink, width, x0, y0, bw, bh, ow, oh);

        long mass = 0;
        long momentX = 0;
        long momentY = 0;
        for (int k = 0; k < oh; k++) {
            for (int i = 0; i < ow; i++) {
                long v = resampled[k * ow + i];
                mass += v;
                momentX += v * (2L * i + 1);
                momentY += v * (2L * k + 1);
            }
        }
        int left = offset(mass, momentX, fw, ow);
        int top = offset(mass, momentY, fh, oh);
        for (int k = 0; k < oh; k++) {
            System.arraycopy(resampled, k * ow, field, (top + k) * fw + left, ow);
        }
        return field;
    }

    /**
     * Step 3: exact area average of the bw × bh box at (x0, y0) into ow × oh cells. Output column
     * i covers [i·bw, (i+1)·bw) and source column j covers [j·ow, (j+1)·ow), in units of 1/ow
     * source pixels; the overlap is the (integer) weight. Sums are exact in 64-bit integers, and
     * the result is rounded half up: (2·S + D) / 2D with D = bw·bh.
     */
    static int[] resample(int[] ink, int stride, int x0, int y0, int bw, int bh, int ow, int oh) {
        long[] rows = new long[bh * ow]; // horizontal pass: bh rows × ow columns
        for (int y = 0; y < bh; y++) {
            int base = (y0 + y) * stride + x0;
            for (int i = 0; i < ow; i++) {
                long lo = (long) i * bw;
                long hi = lo + bw;
                int jStart = (int) (lo / ow);
                int jEnd = (int) Math.min(bw - 1, (hi - 1) / ow);
                long sum = 0;
                for (int j = jStart; j <= jEnd; j++) {
                    long overlap = Math.min(hi, (long) (j + 1) * ow) - Math.max(lo, (long) j * ow);
                    sum += overlap * ink[base + j];
                }
                rows[y * ow + i] = sum;
            }
        }
        long d = (long) bw * bh;
        int[] out = new int[oh * ow];
        for (int k = 0; k < oh; k++) {
            long lo = (long) k * bh;
            long hi = lo + bh;
            int yStart = (int) (lo / oh);
            int yEnd = (int) Math.min(bh - 1, (hi - 1) / oh);
            for (int i = 0; i < ow; i++) {
                long sum = 0;
                for (int y = yStart; y <= yEnd; y++) {
                    long overlap = Math.min(hi, (long) (y + 1) * oh) - Math.max(lo, (long) y * oh);
                    sum += overlap * rows[y * ow + i];
                }
                out[k * ow + i] = (int) ((2 * sum + d) / (2 * d));
            }
        }
        return out;
    }

    /**
     * Step 4: round(field/2 − x̄) half up, x̄ = moment/2·mass − 1/2 the centre of mass in pixel
     * indices (MNIST puts it at index 14 of 28), clamped so the box stays inside the field.
     */
    static int offset(long mass, long moment, int field, int size) {
        if (mass == 0) {
            return (field - size) / 2;
        }
        long left = Math.floorDiv(field * mass - moment + 2 * mass, 2 * mass);
        return (int) Math.min(Math.max(left, 0), field - size);
    }

    /** Step 5: x = (v / scale − mean) / std, each operation in float32. */
    public float[] normalize(int[] field) {
        float[] out = new float[field.length];
        for (int i = 0; i < field.length; i++) {
            out[i] = ((float) field[i] / config.scale - config.mean) / config.std;
        }
        return out;
    }
}
