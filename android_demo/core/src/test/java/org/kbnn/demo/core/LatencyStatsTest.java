package org.kbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.List;
import java.util.Map;
import org.junit.Test;

public class LatencyStatsTest {

    @Test
    @SuppressWarnings("unchecked")
    public void matchesNumpyPercentiles() throws Exception {
        // decoding.json "latency": samples with np.median, np.percentile(x, 90), np.mean, min, max.
        List<Object> cases = (List<Object>) OutputDecoderTest.golden().get("latency");
        assertTrue(cases.size() >= 4);
        for (Object item : cases) {
            Map<String, Object> c = (Map<String, Object>) item;
            List<Object> raw = (List<Object>) c.get("samples_ms");
            double[] samples = new double[raw.size()];
            for (int i = 0; i < samples.length; i++) {
                samples[i] = (Double) raw.get(i);
            }
            LatencyStats s = LatencyStats.ofMillis(samples);
            String name = (String) c.get("name");
            assertEquals(name, (Double) c.get("median"), s.medianMs, 1e-12);
            assertEquals(name, (Double) c.get("p90"), s.p90Ms, 1e-12);
            assertEquals(name, (Double) c.get("mean"), s.meanMs, 1e-9);
            assertEquals(name, (Double) c.get("min"), s.minMs, 0);
            assertEquals(name, (Double) c.get("max"), s.maxMs, 0);
            assertEquals(samples.length, s.count);
        }
    }

    @Test
    public void handExamples() {
        LatencyStats s = LatencyStats.ofMillis(new double[] {4, 1, 3, 2});
        assertEquals(2.5, s.medianMs, 0);
        assertEquals(3.7, s.p90Ms, 1e-12); // h = 3·0.9 = 2.7 → 3 + 0.7·(4 − 3)
        assertEquals(1.0, s.percentile(0), 0);
        assertEquals(4.0, s.percentile(100), 0);
        LatencyStats one = LatencyStats.ofNanos(new long[] {1_500_000});
        assertEquals(1.5, one.medianMs, 0);
        assertEquals(1.5, one.p90Ms, 0);
        assertTrue(one.toString().startsWith("n=1 median=1.500 ms"));
    }

    @Test
    public void rejectsBadSamples() {
        for (double[] bad : new double[][] {{}, {1, Double.NaN}, {-1}, {Double.POSITIVE_INFINITY}}) {
            try {
                LatencyStats.ofMillis(bad);
                fail();
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage(), e.getMessage().contains("samples"));
            }
        }
    }
}
