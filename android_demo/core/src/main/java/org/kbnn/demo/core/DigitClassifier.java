package org.kbnn.demo.core;

import java.util.Collections;
import java.util.List;

/**
 * The draw screen's pipeline: drawing → {@link Preprocessor} → engine → {@link OutputDecoder},
 * timing the inference alone (what the screen reports as latency) and the preprocessing apart.
 */
public final class DigitClassifier implements AutoCloseable {
    private final Preprocessor preprocessor;
    private final OutputDecoder decoder;
    private final Benchmark.Engine engine;
    private final Benchmark.Clock clock;
    private final float[] output;

    public DigitClassifier(ModelSpec spec, Benchmark.Engine engine, Benchmark.Clock clock) {
        if (spec == null || engine == null || clock == null) {
            throw new IllegalArgumentException("spec, engine and clock must not be null");
        }
        this.preprocessor = new Preprocessor(spec.preprocessing);
        this.decoder = OutputDecoder.forSpec(spec);
        this.engine = engine;
        this.clock = clock;
        this.output = new float[spec.numClasses];
    }

    /** The outcome of one classification. */
    public static final class Classification {
        /** Most probable first; empty when the drawing has no ink. */
        public final List<OutputDecoder.Prediction> top;
        public final double inferenceMs;
        public final double preprocessMs;
        /** The 0..255 field the model saw (for a thumbnail). */
        public final int[] field;

        Classification(List<OutputDecoder.Prediction> top, double inferenceMs, double preprocessMs, int[] field) {
            this.top = top;
            this.inferenceMs = inferenceMs;
            this.preprocessMs = preprocessMs;
            this.field = field;
        }
    }

    /** Classifies a drawing; an empty canvas gives no predictions and runs no inference. */
    public synchronized Classification classify(int[] argb, int width, int height, boolean invert, int k)
            throws Exception {
        long t0 = clock.nanoTime();
        Preprocessor.Result input = preprocessor.process(argb, width, height, invert);
        long t1 = clock.nanoTime();
        if (input.empty) {
            return new Classification(Collections.<OutputDecoder.Prediction>emptyList(), 0, (t1 - t0) / 1e6,
                    input.field);
        }
        engine.run(input.input, output);
        long t2 = clock.nanoTime();
        return new Classification(decoder.topK(output, k), (t2 - t1) / 1e6, (t1 - t0) / 1e6, input.field);
    }

    @Override
    public synchronized void close() {
        engine.close();
    }
}
