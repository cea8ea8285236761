package org.kbnn.demo.core;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.Charset;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Loads model.json and the files it lists from a folder of assets, and checks that they agree:
 * each .tflite file exists, is a TFLite flatbuffer, and has the size and SHA-256 model.json
 * records; the labels file, if named, holds the same labels.
 */
public final class ModelAssets {
    public static final String MODEL_JSON = "model.json";
    private static final Charset UTF8 = Charset.forName("UTF-8");

    /** Where the files come from: the APK's assets on Android, a directory on the JVM. */
    public interface Source {
        /** Opens an asset by its relative name; throws FileNotFoundException if absent. */
        InputStream open(String name) throws IOException;

        /** Where the assets are, for messages (e.g. "APK assets" or a path). */
        String describe();
    }

    /** A directory on disk as a {@link Source}. */
    public static Source directory(final File dir) {
        return new Source() {
            @Override
            public InputStream open(String name) throws IOException {
                return new FileInputStream(new File(dir, name));
            }

            @Override
            public String describe() {
                return dir.getPath();
            }
        };
    }

    /** The validated spec and the bytes of every model file, by role. */
    public static final class Bundle {
        public final ModelSpec spec;
        private final Map<String, byte[]> files;

        Bundle(ModelSpec spec, Map<String, byte[]> files) {
            this.spec = spec;
            this.files = Collections.unmodifiableMap(files);
        }

        /** The flatbuffer of the model with this role, or null if model.json lists none. */
        public byte[] flatbuffer(String role) {
            return files.get(role);
        }
    }

    private ModelAssets() {}

    /** Reads and validates everything; all problems found are reported together. */
    public static Bundle load(Source source) throws IOException, ModelSpecException {
        String json;
        try {
            json = new String(readAll(source.open(MODEL_JSON)), UTF8);
        } catch (java.io.FileNotFoundException e) {
            throw new ModelSpecException("no " + MODEL_JSON + " in " + source.describe()
                    + "; export one with `kbnn export-android --out <assets folder>`");
        }
        ModelSpec spec = ModelSpec.parse(json);
        List<String> problems = new ArrayList<String>();
        Map<String, byte[]> files = new LinkedHashMap<String, byte[]>();
        for (int i = 0; i < spec.models.size(); i++) {
            ModelSpec.ModelFile model = spec.models.get(i);
            String where = "models[" + i + "] (" + model.file + ")";
            byte[] data;
            try {
                data = readAll(source.open(model.file));
            } catch (java.io.FileNotFoundException e) {
                problems.add(where + ": file not found in " + source.describe());
                continue;
            }
            if (data.length != model.bytes) {
                problems.add(where + ": file has " + data.length + " bytes, model.json says " + model.bytes);
            }
            String sha = sha256Hex(data);
            if (!sha.equals(model.sha256)) {
                problems.add(where + ": SHA-256 is " + sha + ", model.json says " + model.sha256
                        + " (file changed after export? re-run kbnn export-android)");
            }
            if (!isTfliteFlatbuffer(data)) {
                problems.add(where + ": not a TFLite flatbuffer (no \"TFL3\" identifier at byte 4)");
            }
            files.put(model.role, data);
        }
        if (spec.labelsFile != null) {
            try {
                List<String> fileLabels = lines(new String(readAll(source.open(spec.labelsFile)), UTF8));
                if (!fileLabels.equals(spec.labels)) {
                    problems.add("labels_file (" + spec.labelsFile + "): holds " + fileLabels
                            + ", model.json labels are " + spec.labels);
                }
            } catch (java.io.FileNotFoundException e) {
                problems.add("labels_file (" + spec.labelsFile + "): file not found in " + source.describe());
            }
        }
        if (!problems.isEmpty()) {
            throw new ModelSpecException(problems);
        }
        return new Bundle(spec, files);
    }

    /** A FlatBuffer file identifier sits at bytes 4..7; TFLite's is "TFL3". */
    public static boolean isTfliteFlatbuffer(byte[] data) {
        return data.length >= 8 && data[4] == 'T' && data[5] == 'F' && data[6] == 'L' && data[7] == '3';
    }

    public static String sha256Hex(byte[] data) {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required on every Java platform", e);
        }
        byte[] hash = digest.digest(data);
        StringBuilder out = new StringBuilder(64);
        for (byte b : hash) {
            out.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
        }
        return out.toString();
    }

    /** Lines of a text file without line terminators; a final newline does not add an empty line. */
    static List<String> lines(String text) {
        List<String> out = new ArrayList<String>();
        if (text.startsWith("\uFEFF")) {
            text = text.substring(1);
        }
        String[] parts = text.split("\r?\n", -1);
        int n = parts.length;
        if (n > 0 && parts[n - 1].isEmpty()) {
            n--;
        }
        for (int i = 0; i < n; i++) {
            out.add(parts[i]);
        }
        return out;
    }

    static byte[] readAll(InputStream in) throws IOException {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buffer = new byte[1 << 16];
            int n;
            while ((n = in.read(buffer)) != -1) {
                out.write(buffer, 0, n);
            }
            return out.toByteArray();
        } finally {
            in.close();
        }
    }
}
