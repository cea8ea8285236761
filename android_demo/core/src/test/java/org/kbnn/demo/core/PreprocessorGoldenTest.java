package org.kbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;
import org.junit.Test;

/**
 * Cross-language golden test: kbnn's Python preprocessing ({@code kbnn/apps/preprocessing.py}) wrote
 * these drawings with its own outputs ({@code python -m kbnn.apps.preprocessing --write-golden
 * android_demo/core/src/test/resources/golden}); the JVM core must reproduce every field value
 * and every float32 input bit for bit.
 */
public class PreprocessorGoldenTest {
    static final String GOLDEN = "golden/preprocessing.bin.gz";

    static final class Case {
        String name;
        int width;
        int height;
        boolean invert;
        Preprocessor.Config config;
        int[] argb;
        int[] field;
        float[] tensor;
    }

    static List<Case> readGolden() throws IOException {
        DataInputStream in = new DataInputStream(
                new BufferedInputStream(new GZIPInputStream(TestResources.open(GOLDEN), 1 << 16), 1 << 16));
        try {
            byte[] magic = new byte[8];
            in.readFully(magic);
            assertEquals("KBNNPP01", new String(magic, StandardCharsets.US_ASCII));
            int count = in.readInt();
            List<Case> cases = new ArrayList<Case>();
            for (int c = 0; c < count; c++) {
                Case k = new Case();
                byte[] name = new byte[in.readInt()];
                in.readFully(name);
                k.name = new String(name, StandardCharsets.UTF_8);
                k.width = in.readInt();
                k.height = in.readInt();
                k.invert = in.readInt() != 0;
                int fh = in.readInt();
                int fw = in.readInt();
                int box = in.readInt();
                int threshold = in.readInt();
                float scale = in.readFloat();
                float mean = in.readFloat();
                float std = in.readFloat();
                k.config = new Preprocessor.Config(fh, fw, box, threshold, scale, mean, std);
                k.argb = new int[k.width * k.height];
                for (int i = 0; i < k.argb.length; i++) {
                    k.argb[i] = in.readInt();
                }
                k.field = new int[fh * fw];
                for (int i = 0; i < k.field.length; i++) {
                    k.field[i] = in.readUnsignedByte();
                }
                k.tensor = new float[fh * fw];
                for (int i = 0; i < k.tensor.length; i++) {
                    k.tensor[i] = in.readFloat();
                }
                cases.add(k);
            }
            assertEquals("trailing bytes in " + GOLDEN, -1, in.read());
            return cases;
        } finally {
            in.close();
        }
    }

    @Test
    public void jvmPreprocessingIsBitIdenticalToPython() throws IOException {
        List<Case> cases = readGolden();
        assertTrue("expected a rich set of golden drawings, got " + cases.size(), cases.size() >= 15);
        int nonEmpty = 0;
        for (Case k : cases) {
            Preprocessor.Result r = new Preprocessor(k.config).process(k.argb, k.width, k.height, k.invert);
            for (int i = 0; i < k.field.length; i++) {
                if (r.field[i] != k.field[i]) {
                    fail(k.name + ": field[" + (i / k.config.width) + "][" + (i % k.config.width) + "] = "
                            + r.field[i] + " on the JVM, " + k.field[i] + " in Python");
                }
            }
            for (int i = 0; i < k.tensor.length; i++) {
                if (Float.floatToIntBits(r.input[i]) != Float.floatToIntBits(k.tensor[i])) {
                    fail(k.name + ": input[" + i + "] = " + r.input[i] + " on the JVM, " + k.tensor[i] + " in Python");
                }
            }
            if (!r.empty) {
                nonEmpty++;
            }
        }
        assertTrue(nonEmpty >= cases.size() - 1);
    }
}
