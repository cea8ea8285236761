package org.kbnn.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Random;
import org.junit.Test;

/** Properties of the preprocessing that hold independently of the Python twin. */
public class PreprocessorTest {
    private static final int WHITE = 0xFFFFFFFF;
    private static final Preprocessor MNIST = new Preprocessor(Preprocessor.Config.mnist());

    private static int ink1(int argb, boolean invert) {
        return Preprocessor.ink(new int[] {argb}, 1, 1, invert, 0)[0];
    }

    @Test
    public void inkIsBt601LumaCompositedOverTheBackground() {
        assertEquals(255, ink1(0xFFFFFFFF, false));
        assertEquals(0, ink1(0xFF000000, false));
        assertEquals(0, ink1(0x00FFFFFF, false)); // transparent
        assertEquals(128, ink1(0x80FFFFFF, false)); // half-transparent white: 255·128/255
        assertEquals(76, ink1(0xFFFF0000, false)); // red: 0.299·255 = 76.2
        assertEquals(150, ink1(0xFF00FF00, false)); // green: 0.587·255 = 149.7
        assertEquals(29, ink1(0xFF0000FF, false)); // blue: 0.114·255 = 29.1
        assertEquals(255, ink1(0xFF000000, true)); // black stroke on a light canvas
        assertEquals(0, ink1(0xFFFFFFFF, true));
        assertEquals(0, ink1(0x00000000, true)); // transparent over white = no ink
        assertArrayEquals(new int[] {0, 41, 42}, Preprocessor.ink(new int[] {0xFF282828, 0xFF292929, 0xFF2A2A2A}, 3, 1, false, 40));
    }

    /** A w × h canvas with a filled axis-aligned rectangle and a diagonal line. */
    private static int[] drawing(int w, int h, int dx, int dy) {
        int[] argb = new int[w * h];
        for (int y = 30; y < 90; y++) {
            for (int x = 40; x < 55; x++) {
                argb[(y + dy) * w + x + dx] = WHITE;
            }
        }
        for (int t = 0; t < 70; t++) {
            argb[(20 + t + dy) * w + 60 + t / 2 + dx] = 0xFFC0C0C0;
        }
        return argb;
    }

    @Test
    public void translationDoesNotChangeTheInput() {
        Preprocessor.Result a = MNIST.process(drawing(200, 160, 0, 0), 200, 160, false);
        Preprocessor.Result b = MNIST.process(drawing(200, 160, 57, 41), 200, 160, false);
        assertFalse(a.empty);
        assertArrayEquals(a.field, b.field);
        assertArrayEquals(a.input, b.input, 0f);
    }

    @Test
    public void integerUpscalingDoesNotChangeTheInput() {
        // Area averaging of a k-times nearest-neighbour enlargement is the same average.
        int w = 120;
        int h = 110;
        int[] small = drawing(w, h, 0, 0);
        for (int k : new int[] {2, 3}) {
            int[] big = new int[w * k * h * k];
            for (int y = 0; y < h * k; y++) {
                for (int x = 0; x < w * k; x++) {
                    big[y * w * k + x] = small[(y / k) * w + x / k];
                }
            }
            assertArrayEquals("x" + k, MNIST.process(small, w, h, false).field, MNIST.process(big, w * k, h * k, false).field);
        }
    }

    @Test
    public void darkOnLightWithInvertEqualsLightOnDark() {
        int[] light = drawing(200, 160, 5, 5);
        int[] dark = new int[light.length];
        for (int i = 0; i < light.length; i++) {
            int g = 255 - Preprocessor.ink(new int[] {light[i]}, 1, 1, false, 0)[0];
            dark[i] = 0xFF000000 | (g << 16) | (g << 8) | g;
        }
        assertArrayEquals(MNIST.process(light, 200, 160, false).field, MNIST.process(dark, 200, 160, true).field);
    }

    @Test
    public void resamplingIsTheExactAreaAverageRounded() {
        // Independent reference in double: enlarge each source pixel to ow × oh cells, then
        // average blocks of bw × bh cells (the definition of area averaging).
        Random random = new Random(7);
        for (int trial = 0; trial < 200; trial++) {
            int bw = 1 + random.nextInt(60);
            int bh = 1 + random.nextInt(60);
            int[] ink = new int[bw * bh];
            for (int i = 0; i < ink.length; i++) {
                ink[i] = random.nextInt(3) == 0 ? 0 : random.nextInt(256);
            }
            int ow = 1 + random.nextInt(25);
            int oh = 1 + random.nextInt(25);
            int[] out = Preprocessor.resample(ink, bw, 0, 0, bw, bh, ow, oh);
            for (int k = 0; k < oh; k++) {
                for (int i = 0; i < ow; i++) {
                    double sum = 0;
                    for (int v = k * bh; v < (k + 1) * bh; v++) {
                        for (int u = i * bw; u < (i + 1) * bw; u++) {
                            sum += ink[(v / oh) * bw + u / ow];
                        }
                    }
                    double exact = sum / ((double) bw * bh);
                    assertEquals(bw + "x" + bh + "->" + ow + "x" + oh, exact, out[k * ow + i], 0.5 + 1e-9);
                    assertEquals(Math.floor(exact + 0.5), out[k * ow + i], 1e-9 + (isHalf(exact) ? 1 : 0));
                }
            }
        }
    }

    private static boolean isHalf(double x) {
        return Math.abs(x - Math.floor(x) - 0.5) < 1e-9;
    }

    @Test
    public void digitFitsTheBoxAndItsCentreOfMassIsCentred() {
        Preprocessor.Result r = MNIST.process(drawing(200, 160, 10, 20), 200, 160, false);
        int minX = 28;
        int maxX = -1;
        int minY = 28;
        int maxY = -1;
        double mass = 0;
        double mx = 0;
        double my = 0;
        for (int y = 0; y < 28; y++) {
            for (int x = 0; x < 28; x++) {
                int v = r.field[y * 28 + x];
                if (v > 0) {
                    minX = Math.min(minX, x);
                    maxX = Math.max(maxX, x);
                    minY = Math.min(minY, y);
                    maxY = Math.max(maxY, y);
                    mass += v;
                    mx += v * x;
                    my += v * y;
                }
            }
        }
        assertEquals("the longer side (height) spans the 20 px box", 20, maxY - minY + 1);
        assertTrue(maxX - minX + 1 <= 20);
        assertEquals("centre of mass at pixel index 14, as in MNIST", 14.0, mx / mass, 0.5);
        assertEquals(14.0, my / mass, 0.5);
    }

    @Test
    public void offsetRoundsHalfUpAndClamps() {
        assertEquals(4, Preprocessor.offset(4, 84, 28, 20)); // centre of mass at index 10 → 14 − 10
        assertEquals(5, Preprocessor.offset(2, 40, 28, 20)); // 9.5 → 4.5 rounds up to 5
        assertEquals(0, Preprocessor.offset(1, 41, 28, 20)); // 20 → −6, clamped to 0
        assertEquals(8, Preprocessor.offset(1, 1, 28, 20)); // 0 → 14, clamped to 28 − 20
        assertEquals(4, Preprocessor.offset(0, 0, 28, 20)); // no mass: centred geometrically
    }

    @Test
    public void boxWhoseMassIsAtOneSideStaysInsideTheField() {
        // A full-height bar at the right edge plus one pixel at the far left: the box spans the
        // canvas, its mass sits at the right, and centring it would push it out of the field.
        int[] argb = new int[100 * 100];
        for (int y = 0; y < 100; y++) {
            for (int x = 90; x < 100; x++) {
                argb[y * 100 + x] = WHITE;
            }
        }
        argb[50 * 100] = WHITE;
        int[] field = MNIST.process(argb, 100, 100, false).field;
        int rightmost = -1;
        for (int y = 0; y < 28; y++) {
            for (int x = 0; x < 28; x++) {
                if (field[y * 28 + x] > 0) {
                    rightmost = Math.max(rightmost, x);
                }
            }
        }
        assertEquals("box clamped to the left edge: columns 0..19", 19, rightmost);
    }

    @Test
    public void emptyCanvasGivesTheBlankInput() {
        Preprocessor p = new Preprocessor(new Preprocessor.Config(28, 28, 20, 0, 255f, 0.5f, 0.25f));
        Preprocessor.Result r = p.process(new int[50 * 40], 50, 40, false);
        assertTrue(r.empty);
        for (int i = 0; i < 28 * 28; i++) {
            assertEquals(0, r.field[i]);
            assertEquals(-2f, r.input[i], 0f);
        }
    }

    @Test
    public void normalisationIsFloat32() {
        Preprocessor p = new Preprocessor(new Preprocessor.Config(1, 1, 1, 0, 255f, 0.1307f, 0.3081f));
        float expected = ((float) 200 / 255f - 0.1307f) / 0.3081f;
        assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(p.normalize(new int[] {200})[0]));
        assertEquals(1f, MNIST.normalize(new int[] {255})[0], 0f);
    }

    @Test
    public void rejectsBadArguments() {
        try {
            MNIST.process(new int[10], 3, 3, false);
            fail();
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("argb has 10 pixels, not width*height = 3*3"));
        }
        try {
            new Preprocessor.Config(28, 28, 29, 0, 255f, 0f, 1f);
            fail();
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("digitBox must be in 1..28"));
        }
        try {
            new Preprocessor.Config(28, 28, 20, 0, 255f, 0f, 0f);
            fail();
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("std must be positive"));
        }
    }
}
