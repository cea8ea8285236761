package org.kbnn.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

public class DigitClassifierTest {

    @Test
    public void runsPreprocessingEngineAndDecoderInOrder() throws Exception {
        ModelSpec spec = ModelSpec.parse(TestResources.text("spec/model_v1.json")
                .replace("\"activation\": \"softmax\"", "\"activation\": \"logits\""));
        final BenchmarkTest.FakeClock clock = new BenchmarkTest.FakeClock();
        final float[][] seen = new float[1][];
        final boolean[] closed = {false};
        // A stand-in network: logit c = number of input values above the blank level, times c.
        Benchmark.Engine engine = new Benchmark.Engine() {
            @Override
            public void run(float[] input, float[] output) {
                seen[0] = input.clone();
                float blank = (0f - 0.1307f) / 0.3081f;
                int inked = 0;
                for (float x : input) {
                    inked += x > blank ? 1 : 0;
                }
                for (int c = 0; c < output.length; c++) {
                    output[c] = c == 7 ? 5f : c == 1 ? 4f : c == 4 ? 3f : 0f;
                }
                clock.now += 2_500_000L + inked; // 2.5 ms (+ a few ns)
            }

            @Override
            public void close() {
                closed[0] = true;
            }
        };
        int w = 64;
        int h = 64;
        int[] argb = new int[w * h];
        for (int y = 10; y < 50; y++) {
            argb[y * w + 30] = 0xFFFFFFFF;
        }
        DigitClassifier classifier = new DigitClassifier(spec, engine, clock);
        DigitClassifier.Classification c = classifier.classify(argb, w, h, false, 3);
        Preprocessor.Result expected = new Preprocessor(spec.preprocessing).process(argb, w, h, false);
        assertArrayEquals(expected.input, seen[0], 0f);
        assertArrayEquals(expected.field, c.field);
        assertEquals(3, c.top.size());
        assertEquals("7", c.top.get(0).label);
        assertEquals("1", c.top.get(1).label);
        assertEquals("4", c.top.get(2).label);
        double z = Math.exp(5) + Math.exp(4) + Math.exp(3) + 7;
        assertEquals(Math.exp(5) / z, c.top.get(0).probability, 1e-6);
        assertEquals(2.5, c.inferenceMs, 0.001);
        classifier.close();
        assertTrue(closed[0]);
    }

    @Test
    public void emptyCanvasRunsNoInference() throws Exception {
        ModelSpec spec = ModelSpec.parse(TestResources.text("spec/model_v1.json"));
        final int[] runs = {0};
        Benchmark.Engine engine = new Benchmark.Engine() {
            @Override
            public void run(float[] input, float[] output) {
                runs[0]++;
            }

            @Override
            public void close() {}
        };
        DigitClassifier.Classification c = new DigitClassifier(spec, engine, new BenchmarkTest.FakeClock())
                .classify(new int[100], 10, 10, false, 3);
        assertTrue(c.top.isEmpty());
        assertEquals(0, runs[0]);
    }
}
