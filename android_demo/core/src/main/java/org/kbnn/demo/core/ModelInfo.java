package org.kbnn.demo.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** The model-info screen's text: name, accuracy, weight bits and operators, from model.json. */
public final class ModelInfo {
    private ModelInfo() {}

    /** One line per fact, ready to show; models in model.json order. */
    public static List<String> describe(ModelSpec spec) {
        List<String> lines = new ArrayList<String>();
        lines.add("Model: " + spec.name);
        if (!spec.description.isEmpty()) {
            lines.add(spec.description);
        }
        Preprocessor.Config c = spec.preprocessing;
        lines.add(String.format(Locale.ROOT, "Input: %d×%d grayscale, x = (v/%s − %s) / %s; digit box %d px",
                c.height, c.width, num(c.scale), num(c.mean), num(c.std), c.digitBox));
        lines.add("Output: " + spec.numClasses + " classes (" + (spec.outputIsProbabilities ? "softmax" : "logits")
                + "): " + join(spec.labels));
        for (ModelSpec.ModelFile m : spec.models) {
            lines.add("");
            lines.add(String.format(Locale.ROOT, "%s model: %s, %s%s", m.role, m.file,
                    Benchmark.formatBytes(m.bytes), m.requiresLce ? ", needs LCE ops" : ""));
            if (!m.note.isEmpty()) {
                lines.add("  " + m.note);
            }
            if (m.accuracy != null) {
                lines.add(String.format(Locale.ROOT, "  accuracy: %.2f%% top-1 on %d images of %s; %s",
                        100 * m.accuracy.top1, m.accuracy.samples, m.accuracy.dataset, m.accuracy.engine));
            } else {
                lines.add("  accuracy: not measured");
            }
            if (!m.weightBits.isEmpty()) {
                lines.add("  weights: " + bits(m.weightBits));
            }
            lines.add("  ops (" + m.opCount() + "): " + ops(m.ops));
        }
        return lines;
    }

    /** {1: 900, 32: 100} → "1-bit 90.0% (900), 32-bit 10.0% (100)". */
    static String bits(Map<Integer, Long> weightBits) {
        long total = 0;
        for (long n : weightBits.values()) {
            total += n;
        }
        StringBuilder out = new StringBuilder();
        for (Map.Entry<Integer, Long> e : weightBits.entrySet()) {
            if (out.length() > 0) {
                out.append(", ");
            }
            double share = total == 0 ? 0 : 100.0 * e.getValue() / total;
            out.append(String.format(Locale.ROOT, "%d-bit %.1f%% (%,d)", e.getKey(), share, e.getValue()));
        }
        return out.toString();
    }

    static String ops(Map<String, Integer> ops) {
        StringBuilder out = new StringBuilder();
        for (Map.Entry<String, Integer> e : ops.entrySet()) {
            if (out.length() > 0) {
                out.append(", ");
            }
            out.append(e.getKey()).append(" ×").append(e.getValue());
        }
        return out.toString();
    }

    private static String join(List<String> items) {
        StringBuilder out = new StringBuilder();
        for (String s : items) {
            out.append(out.length() > 0 ? " " : "").append(s);
        }
        return out.toString();
    }

    private static String num(float v) {
        return v == Math.rint(v) ? Integer.toString((int) v) : Float.toString(v);
    }
}
