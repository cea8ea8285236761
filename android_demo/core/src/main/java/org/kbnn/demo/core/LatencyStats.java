package org.kbnn.demo.core;

import java.util.Arrays;
import java.util.Locale;

/**
 * Summary statistics of latency samples in milliseconds.
 *
 * <p>Percentiles interpolate linearly between order statistics, the definition numpy's
 * {@code np.percentile} uses by default (Hyndman and Fan 1996, type 7): for sorted samples x of
 * length n, p-th percentile = x[h] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]) with h = (n − 1)·p/100.
 */
public final class LatencyStats {
    public final int count;
    public final double minMs;
    public final double maxMs;
    public final double meanMs;
    public final double medianMs;
    public final double p90Ms;
    private final double[] sorted;

    private LatencyStats(double[] samplesMs) {
        sorted = samplesMs.clone();
        Arrays.sort(sorted);
        count = sorted.length;
        minMs = sorted[0];
        maxMs = sorted[count - 1];
        double sum = 0;
        for (double s : sorted) {
            sum += s;
        }
        meanMs = sum / count;
        medianMs = percentile(50);
        p90Ms = percentile(90);
    }

    /** Statistics of samples given in milliseconds. */
    public static LatencyStats ofMillis(double[] samplesMs) {
        if (samplesMs == null || samplesMs.length == 0) {
            throw new IllegalArgumentException("no latency samples");
        }
        for (double s : samplesMs) {
            if (!(s >= 0) || Double.isInfinite(s)) {
                throw new IllegalArgumentException("latency samples must be finite and >= 0, got " + s);
            }
        }
        return new LatencyStats(samplesMs);
    }

    /** Statistics of samples given in nanoseconds (what {@code System.nanoTime} differences give). */
    public static LatencyStats ofNanos(long[] samplesNs) {
        if (samplesNs == null || samplesNs.length == 0) {
            throw new IllegalArgumentException("no latency samples");
        }
        double[] ms = new double[samplesNs.length];
        for (int i = 0; i < ms.length; i++) {
            ms[i] = samplesNs[i] / 1e6;
        }
        return ofMillis(ms);
    }

    /** The p-th percentile (0 ≤ p ≤ 100), linear interpolation (numpy's default). */
    public double percentile(double p) {
        if (!(p >= 0 && p <= 100)) {
            throw new IllegalArgumentException("percentile must be in [0, 100], got " + p);
        }
        double h = (count - 1) * p / 100.0;
        int lo = (int) Math.floor(h);
        if (lo >= count - 1) {
            return sorted[count - 1];
        }
        double frac = h - lo;
        return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "n=%d median=%.3f ms p90=%.3f ms mean=%.3f ms min=%.3f ms max=%.3f ms",
                count, medianMs, p90Ms, meanMs, minMs, maxMs);
    }
}
