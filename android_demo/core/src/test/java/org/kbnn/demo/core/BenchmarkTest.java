package org.kbnn.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.Test;

public class BenchmarkTest {

    /** A clock that engines advance by a scripted amount per inference. */
    static final class FakeClock implements Benchmark.Clock {
        long now;

        @Override
        public long nanoTime() {
            return now;
        }
    }

    /** Records what the benchmark did; each run takes a fixed time that depends on the variant. */
    static final class FakeFactory implements Benchmark.EngineFactory {
        final FakeClock clock;
        final List<String> log = new ArrayList<String>();
        int open;

        FakeFactory(FakeClock clock) {
            this.clock = clock;
        }

        @Override
        public Benchmark.Engine open(final ModelSpec.ModelFile model, final Benchmark.Variant v) {
            open++;
            log.add("open " + model.file + " threads=" + v.threads + " xnnpack=" + v.xnnpack);
            final long[] runs = {0};
            return new Benchmark.Engine() {
                @Override
                public void run(float[] input, float[] output) {
                    runs[0]++;
                    assertEquals(28 * 28, input.length);
                    assertEquals(10, output.length);
                    // binary: 1 ms per inference / threads; float: 8 ms / threads; the 1st run +9 ms
                    long base = (model.role.equals("binary") ? 1_000_000L : 8_000_000L) / v.threads;
                    clock.now += base + (runs[0] == 1 ? 9_000_000L : 0) + runs[0] * 1000;
                }

                @Override
                public void close() {
                    open--;
                    log.add("close " + model.file + " after " + runs[0] + " runs");
                }
            };
        }
    }

    static ModelSpec spec() throws Exception {
        return ModelSpec.parse(TestResources.text("spec/model_v1.json"));
    }

    @Test
    public void planCoversEveryModelAndThreadCount() throws Exception {
        List<Benchmark.Variant> plan = Benchmark.plan(spec(), new int[] {1, 2, 4}, true);
        List<String> got = new ArrayList<String>();
        for (Benchmark.Variant v : plan) {
            got.add(v.role + "/" + v.threads + (v.xnnpack ? "/xnn" : ""));
        }
        assertEquals(Arrays.asList("binary/1", "binary/2", "binary/4", "float/1", "float/2", "float/4",
                "float/1/xnn", "float/2/xnn", "float/4/xnn"), got);
        assertEquals(6, Benchmark.plan(spec(), new int[] {1, 2, 4}, false).size());
    }

    @Test
    public void timesOnlyTheMeasuredRunsAndClosesEngines() throws Exception {
        FakeClock clock = new FakeClock();
        FakeFactory factory = new FakeFactory(clock);
        final List<Benchmark.Result> streamed = new ArrayList<Benchmark.Result>();
        List<Benchmark.Variant> plan = Arrays.asList(new Benchmark.Variant("binary", 1, false),
                new Benchmark.Variant("float", 4, false));
        List<Benchmark.Result> results = new Benchmark(spec(), factory, clock).run(plan, 2, 5,
                new Benchmark.Listener() {
                    @Override
                    public void onResult(Benchmark.Result r) {
                        streamed.add(r);
                    }
                });
        assertEquals(results, streamed);
        assertEquals(0, factory.open);
        assertEquals(Arrays.asList(
                "open binarynet_mnist.tflite threads=1 xnnpack=false",
                "close binarynet_mnist.tflite after 7 runs",
                "open binarynet_mnist_float.tflite threads=4 xnnpack=false",
                "close binarynet_mnist_float.tflite after 7 runs"), factory.log);
        // Warm-up runs 1–2 (including the slow first one) are not timed; runs 3..7 are.
        LatencyStats binary = results.get(0).stats;
        assertEquals(5, binary.count);
        assertEquals(1.003, binary.minMs, 1e-12);
        assertEquals(1.007, binary.maxMs, 1e-12);
        assertEquals(1.005, binary.medianMs, 1e-12);
        assertEquals(1.0066, binary.p90Ms, 1e-12);
        assertEquals(2.005, results.get(1).stats.medianMs, 1e-12); // 8 ms / 4 threads + 5 µs

        String table = Benchmark.formatTable(results);
        assertTrue(table, table.contains("binary   107.6 KiB       1     off      1.005      1.007     5"));
        assertTrue(table, table.contains("float     3.27 MiB       4     off      2.005      2.007     5"));
        assertTrue(table, table.contains("binary file is 31.2x smaller than its float twin"));
    }

    @Test
    public void closesTheEngineWhenInterrupted() throws Exception {
        FakeClock clock = new FakeClock();
        FakeFactory factory = new FakeFactory(clock);
        Thread.currentThread().interrupt();
        try {
            new Benchmark(spec(), factory, clock).run(Benchmark.plan(spec(), new int[] {1}, false), 0, 3, null);
            fail();
        } catch (InterruptedException e) {
            assertEquals("benchmark cancelled", e.getMessage());
        } finally {
            Thread.interrupted();
        }
        assertEquals(0, factory.open);
    }

    @Test
    public void inputIsDeterministicAndNormalised() throws Exception {
        ModelSpec spec = spec();
        float[] a = Benchmark.benchmarkInput(spec);
        assertArrayEquals(a, Benchmark.benchmarkInput(spec), 0f);
        float lo = (0 / 255f - 0.1307f) / 0.3081f;
        float hi = (255 / 255f - 0.1307f) / 0.3081f;
        boolean varied = false;
        for (float x : a) {
            assertTrue(x >= lo && x <= hi);
            varied |= x != a[0];
        }
        assertTrue(varied);
    }

    @Test
    public void formatsSizes() {
        assertEquals("1000 B", Benchmark.formatBytes(1000));
        assertEquals("1.5 KiB", Benchmark.formatBytes(1536));
        assertEquals("3.27 MiB", Benchmark.formatBytes(3434036));
        assertFalse(Benchmark.formatTable(new ArrayList<Benchmark.Result>()).contains("smaller"));
    }
}
