package org.kbnn.demo.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Model output → class probabilities → the top-k predictions with their labels. */
public final class OutputDecoder {
    private final List<String> labels;
    private final boolean outputIsProbabilities;

    /**
     * @param labels one label per output class
     * @param outputIsProbabilities true when the model ends in softmax (model.json
     *     {@code output.activation = "softmax"}); false for logits, which get a softmax here
     */
    public OutputDecoder(List<String> labels, boolean outputIsProbabilities) {
        if (labels == null || labels.isEmpty()) {
            throw new IllegalArgumentException("labels must not be empty");
        }
        this.labels = Collections.unmodifiableList(new ArrayList<String>(labels));
        this.outputIsProbabilities = outputIsProbabilities;
    }

    public static OutputDecoder forSpec(ModelSpec spec) {
        return new OutputDecoder(spec.labels, spec.outputIsProbabilities);
    }

    /** One class with its probability. */
    public static final class Prediction {
        public final int index;
        public final String label;
        public final double probability;

        Prediction(int index, String label, double probability) {
            this.index = index;
            this.label = label;
            this.probability = probability;
        }

        @Override
        public String toString() {
            return String.format(java.util.Locale.ROOT, "%s %.1f%%", label, 100 * probability);
        }
    }

    /**
     * Numerically stable softmax in double precision: p_i = exp(z_i − max z) / Σ_j exp(z_j − max z).
     *
     * @throws IllegalArgumentException for an empty vector or a NaN/infinite logit
     */
    public static double[] softmax(float[] logits) {
        checkFinite(logits);
        double max = Double.NEGATIVE_INFINITY;
        for (float z : logits) {
            max = Math.max(max, z);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            p[i] = Math.exp(logits[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
        return p;
    }

    /** Class probabilities for one output vector (softmax applied when the model gives logits). */
    public double[] probabilities(float[] output) {
        if (output == null || output.length != labels.size()) {
            throw new IllegalArgumentException("output has " + (output == null ? 0 : output.length)
                    + " values, the model has " + labels.size() + " labels");
        }
        if (!outputIsProbabilities) {
            return softmax(output);
        }
        checkFinite(output);
        double[] p = new double[output.length];
        for (int i = 0; i < output.length; i++) {
            p[i] = output[i];
        }
        return p;
    }

    /** The k most probable classes, most probable first; equal probabilities keep class order. */
    public List<Prediction> topK(float[] output, int k) {
        if (k < 1) {
            throw new IllegalArgumentException("k must be >= 1, got " + k);
        }
        double[] p = probabilities(output);
        int n = Math.min(k, p.length);
        boolean[] taken = new boolean[p.length];
        List<Prediction> out = new ArrayList<Prediction>(n);
        for (int r = 0; r < n; r++) { // k is small (3): selection beats sorting all classes
            int best = -1;
            for (int i = 0; i < p.length; i++) {
                if (!taken[i] && (best < 0 || p[i] > p[best])) {
                    best = i;
                }
            }
            taken[best] = true;
            out.add(new Prediction(best, labels.get(best), p[best]));
        }
        return out;
    }

    private static void checkFinite(float[] values) {
        if (values == null || values.length == 0) {
            throw new IllegalArgumentException("the output vector is empty");
        }
        for (int i = 0; i < values.length; i++) {
            if (Float.isNaN(values[i]) || Float.isInfinite(values[i])) {
                throw new IllegalArgumentException("output[" + i + "] is " + values[i]
                        + "; the model produced a non-finite value");
            }
        }
    }
}
