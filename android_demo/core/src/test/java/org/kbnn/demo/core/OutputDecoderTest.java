package org.kbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

public class OutputDecoderTest {
    private static final List<String> DIGITS = Arrays.asList("0", "1", "2", "3", "4", "5", "6", "7", "8", "9");

    @SuppressWarnings("unchecked")
    static Map<String, Object> golden() throws Exception {
        return (Map<String, Object>) Json.parse(TestResources.text("golden/decoding.json"));
    }

    static float[] floats(Object list) {
        List<?> values = (List<?>) list;
        float[] out = new float[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) (double) (Double) values.get(i);
        }
        return out;
    }

    @Test
    @SuppressWarnings("unchecked")
    public void softmaxMatchesNumpy() throws Exception {
        // decoding.json: float32 logits and scipy.special.softmax of them in float64, written by
        // `python -m kbnn.apps.android --write-golden`.
        List<Object> cases = (List<Object>) golden().get("softmax");
        assertTrue(cases.size() >= 5);
        for (Object item : cases) {
            Map<String, Object> c = (Map<String, Object>) item;
            float[] logits = floats(c.get("logits"));
            List<Object> expected = (List<Object>) c.get("probabilities");
            double[] p = OutputDecoder.softmax(logits);
            for (int i = 0; i < p.length; i++) {
                assertEquals(c.get("name") + "[" + i + "]", (Double) expected.get(i), p[i], 1e-12);
            }
            List<Object> top3 = (List<Object>) c.get("top3");
            List<String> labels = DIGITS.subList(0, logits.length);
            List<OutputDecoder.Prediction> got = new OutputDecoder(labels, false).topK(logits, 3);
            for (int r = 0; r < top3.size(); r++) {
                assertEquals(c.get("name") + " rank " + r, ((Double) top3.get(r)).intValue(), got.get(r).index);
            }
        }
    }

    @Test
    public void softmaxIsStableForHugeLogits() {
        double[] p = OutputDecoder.softmax(new float[] {1000f, 999f, -1000f});
        assertEquals(1 / (1 + Math.exp(-1)), p[0], 1e-15);
        assertEquals(0.0, p[2], 1e-300);
        double sum = 0;
        for (double v : p) {
            sum += v;
        }
        assertEquals(1.0, sum, 1e-15);
    }

    @Test
    public void topKOrdersByProbabilityAndKeepsClassOrderOnTies() {
        OutputDecoder decoder = new OutputDecoder(DIGITS, true);
        float[] probs = {0.05f, 0.3f, 0.05f, 0.3f, 0f, 0f, 0f, 0.2f, 0.1f, 0f};
        List<OutputDecoder.Prediction> top = decoder.topK(probs, 3);
        assertEquals(3, top.size());
        assertEquals("1", top.get(0).label);
        assertEquals("3", top.get(1).label);
        assertEquals("7", top.get(2).label);
        assertEquals(0.3f, top.get(0).probability, 0);
        assertEquals("1 30.0%", top.get(0).toString());
        assertEquals(10, decoder.topK(probs, 50).size());
    }

    @Test
    public void probabilityOutputsArePassedThrough() {
        float[] probs = {0.1f, 0.9f};
        assertEquals(0.9f, new OutputDecoder(Arrays.asList("a", "b"), true).probabilities(probs)[1], 0);
        assertEquals(1 / (1 + Math.exp(-0.8)), new OutputDecoder(Arrays.asList("a", "b"), false).probabilities(probs)[1], 1e-7);
    }

    @Test
    public void rejectsMismatchedOrNonFiniteOutputs() {
        OutputDecoder decoder = new OutputDecoder(DIGITS, false);
        String[][] expected = {
            {"short", "output has 3 values, the model has 10 labels"},
            {"nan", "output[2] is NaN; the model produced a non-finite value"},
            {"k", "k must be >= 1"},
        };
        for (String[] e : expected) {
            try {
                if (e[0].equals("short")) {
                    decoder.topK(new float[3], 1);
                } else if (e[0].equals("nan")) {
                    float[] out = new float[10];
                    out[2] = Float.NaN;
                    decoder.topK(out, 1);
                } else {
                    decoder.topK(new float[10], 0);
                }
                fail(e[0]);
            } catch (IllegalArgumentException ex) {
                assertEquals(e[1], ex.getMessage().substring(0, Math.min(ex.getMessage().length(), e[1].length())));
            }
        }
    }
}
