package org.kbnn.demo.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Latency benchmark of the bundled models: for each (model, threads, XNNPACK) variant, open an
 * engine, run {@code warmup} untimed inferences, then time {@code runs} inferences one by one.
 *
 * <p>The engine (TFLite's Interpreter on Android) and the clock are interfaces, so the procedure
 * and its bookkeeping are tested on the JVM with a fake engine and clock.
 */
public final class Benchmark {
    /** One loaded model ready to run; on Android a TFLite Interpreter. */
    public interface Engine extends AutoCloseable {
        void run(float[] input, float[] output) throws Exception;

        @Override
        void close();
    }

    /** Creates engines; on Android it builds Interpreter.Options from the variant. */
    public interface EngineFactory {
        Engine open(ModelSpec.ModelFile model, Variant variant) throws Exception;
    }

    /** Monotonic time source in nanoseconds ({@code System::nanoTime} in the app). */
    public interface Clock {
        long nanoTime();
    }

    /** Called after each variant finishes, e.g. to update the table on screen. */
    public interface Listener {
        void onResult(Result result);
    }

    /** Which model and which interpreter settings. */
    public static final class Variant {
        public final String role;
        public final int threads;
        public final boolean xnnpack;

        public Variant(String role, int threads, boolean xnnpack) {
            if (threads < 1) {
                throw new IllegalArgumentException("threads must be >= 1, got " + threads);
            }
            this.role = role;
            this.threads = threads;
            this.xnnpack = xnnpack;
        }
    }

    /** Timings of one variant. */
    public static final class Result {
        public final Variant variant;
        public final ModelSpec.ModelFile model;
        public final LatencyStats stats;

        Result(Variant variant, ModelSpec.ModelFile model, LatencyStats stats) {
            this.variant = variant;
            this.model = model;
            this.stats = stats;
        }
    }

    private final ModelSpec spec;
    private final EngineFactory factory;
    private final Clock clock;

    public Benchmark(ModelSpec spec, EngineFactory factory, Clock clock) {
        if (spec == null || factory == null || clock == null) {
            throw new IllegalArgumentException("spec, factory and clock must not be null");
        }
        this.spec = spec;
        this.factory = factory;
        this.clock = clock;
    }

    /**
     * The default plan: every bundled model at each thread count with XNNPACK off (LCE's binary
     * kernels need it off, and the float twin is timed the same way for a like-for-like
     * comparison), plus the float twin with XNNPACK on when {@code floatWithXnnpack}.
     */
    public static List<Variant> plan(ModelSpec spec, int[] threadCounts, boolean floatWithXnnpack) {
        if (threadCounts == null || threadCounts.length == 0) {
            throw new IllegalArgumentException("give at least one thread count");
        }
        List<Variant> plan = new ArrayList<Variant>();
        for (String role : new String[] {ModelSpec.ROLE_BINARY, ModelSpec.ROLE_FLOAT}) {
            if (spec.model(role) == null) {
                continue;
            }
            for (int threads : threadCounts) {
                plan.add(new Variant(role, threads, false));
            }
            if (role.equals(ModelSpec.ROLE_FLOAT) && floatWithXnnpack) {
                for (int threads : threadCounts) {
                    plan.add(new Variant(role, threads, true));
                }
            }
        }
        return Collections.unmodifiableList(plan);
    }

    /** Runs the variants in order; stops with InterruptedException if the thread is interrupted. */
    public List<Result> run(List<Variant> variants, int warmup, int runs, Listener listener) throws Exception {
        if (warmup < 0 || runs < 1) {
            throw new IllegalArgumentException("need warmup >= 0 and runs >= 1, got " + warmup + ", " + runs);
        }
        float[] input = benchmarkInput(spec);
        float[] output = new float[spec.numClasses];
        List<Result> results = new ArrayList<Result>();
        for (Variant variant : variants) {
            ModelSpec.ModelFile model = spec.model(variant.role);
            if (model == null) {
                throw new IllegalArgumentException("model.json has no \"" + variant.role + "\" model");
            }
            long[] samples = new long[runs];
            Engine engine = factory.open(model, variant);
            try {
                for (int i = 0; i < warmup; i++) {
                    checkInterrupted();
                    engine.run(input, output);
                }
                for (int i = 0; i < runs; i++) {
                    checkInterrupted();
                    long start = clock.nanoTime();
                    engine.run(input, output);
                    samples[i] = clock.nanoTime() - start;
                }
            } finally {
                engine.close();
            }
            Result result = new Result(variant, model, LatencyStats.ofNanos(samples));
            results.add(result);
            if (listener != null) {
                listener.onResult(result);
            }
        }
        return results;
    }

    /** A fixed pseudo-random input in the model's normalised range (data does not change BNN timing). */
    static float[] benchmarkInput(ModelSpec spec) {
        Preprocessor.Config c = spec.preprocessing;
        Random random = new Random(42);
        float[] x = new float[c.height * c.width];
        for (int i = 0; i < x.length; i++) {
            x[i] = ((float) random.nextInt(256) / c.scale - c.mean) / c.std;
        }
        return x;
    }

    private static void checkInterrupted() throws InterruptedException {
        if (Thread.currentThread().isInterrupted()) {
            throw new InterruptedException("benchmark cancelled");
        }
    }

    /** The results as a fixed-width text table, plus the size ratio of the two models. */
    public static String formatTable(List<Result> results) {
        StringBuilder out = new StringBuilder();
        out.append(String.format(Locale.ROOT, "%-7s %10s %7s %7s %10s %10s %5s%n",
                "model", "size", "threads", "XNNPACK", "median ms", "p90 ms", "runs"));
        for (Result r : results) {
            out.append(String.format(Locale.ROOT, "%-7s %10s %7d %7s %10.3f %10.3f %5d%n",
                    r.variant.role, formatBytes(r.model.bytes), r.variant.threads,
                    r.variant.xnnpack ? "on" : "off", r.stats.medianMs, r.stats.p90Ms, r.stats.count));
        }
        ModelSpec.ModelFile binary = null;
        ModelSpec.ModelFile twin = null;
        for (Result r : results) {
            if (r.model.role.equals(ModelSpec.ROLE_BINARY)) {
                binary = r.model;
            } else if (r.model.role.equals(ModelSpec.ROLE_FLOAT)) {
                twin = r.model;
            }
        }
        if (binary != null && twin != null) {
            out.append(String.format(Locale.ROOT, "binary file is %.1fx smaller than its float twin%n",
                    (double) twin.bytes / binary.bytes));
        }
        return out.toString();
    }

    /** 1536 → "1.5 KiB", 3434036 → "3.27 MiB". */
    public static String formatBytes(long bytes) {
        if (bytes < 1024) {
            return bytes + " B";
        }
        if (bytes < 1024 * 1024) {
            return String.format(Locale.ROOT, "%.1f KiB", bytes / 1024.0);
        }
        return String.format(Locale.ROOT, "%.2f MiB", bytes / (1024.0 * 1024.0));
    }
}
