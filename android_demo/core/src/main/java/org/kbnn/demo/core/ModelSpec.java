package org.kbnn.demo.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The contract between {@code kbnn export-android} and the app: model.json, parsed and validated.
 *
 * <p>Version 1 (written by kbnn/apps/android.py, documented in android_demo/README.md):
 *
 * <pre>
 * {"format": "kbnn-android-model", "version": 1, "name": "...", "description": "...",
 *  "input": {"shape": [1, H, W, 1], "dtype": "float32",
 *            "normalization": {"scale": 255.0, "mean": 0.0, "std": 1.0},
 *            "preprocessing": {"method": "mnist_centre_of_mass", "digit_box": 20, "ink_threshold": 0}},
 *  "output": {"shape": [1, N], "dtype": "float32", "activation": "softmax" | "logits"},
 *  "labels": [N strings], "labels_file": "labels.txt",
 *  "models": [{"role": "binary" | "float", "file": "x.tflite", "bytes": n, "sha256": "64 hex",
 *              "requires_lce": true, "ops": {"LceBconv2d": 2, ...}, "weight_bits": {"1": n, "32": n},
 *              "accuracy": {"top1": 0.98, "samples": 1000, "dataset": "...", "engine": "..."},
 *              "note": "optional remark"}]}
 * </pre>
 *
 * Unknown keys are ignored (a later version 1 writer may add information); a different {@code
 * format} or {@code version} is refused before anything else is read.
 */
public final class ModelSpec {
    public static final String FORMAT = "kbnn-android-model";
    public static final int VERSION = 1;
    public static final String PREPROCESSING_METHOD = "mnist_centre_of_mass";
    public static final String ROLE_BINARY = "binary";
    public static final String ROLE_FLOAT = "float";
    /** Largest input side the app accepts (a 1024×1024 float input is already 4 MiB). */
    public static final int MAX_INPUT_SIDE = 1024;

    public final String name;
    public final String description;
    public final int inputHeight;
    public final int inputWidth;
    public final Preprocessor.Config preprocessing;
    public final int numClasses;
    /** True when the model already ends in softmax; false for logits. */
    public final boolean outputIsProbabilities;
    public final List<String> labels;
    /** Optional labels file (one label a line) beside model.json; null when absent. */
    public final String labelsFile;
    public final List<ModelFile> models;

    private ModelSpec(Builder b) {
        name = b.name;
        description = b.description;
        inputHeight = b.inputHeight;
        inputWidth = b.inputWidth;
        preprocessing = b.preprocessing;
        numClasses = b.numClasses;
        outputIsProbabilities = b.outputIsProbabilities;
        labels = Collections.unmodifiableList(b.labels);
        labelsFile = b.labelsFile;
        models = Collections.unmodifiableList(b.models);
    }

    /** The model with this role ({@link #ROLE_BINARY} or {@link #ROLE_FLOAT}), or null. */
    public ModelFile model(String role) {
        for (ModelFile m : models) {
            if (m.role.equals(role)) {
                return m;
            }
        }
        return null;
    }

    /** One .tflite file listed in model.json. */
    public static final class ModelFile {
        public final String role;
        public final String file;
        public final long bytes;
        public final String sha256;
        public final boolean requiresLce;
        /** Operator name → count, in the order model.json lists them. */
        public final Map<String, Integer> ops;
        /** Weight precision in bits → number of parameters stored at that precision (may be empty). */
        public final Map<Integer, Long> weightBits;
        /** Measured accuracy, or null when the exporter did not measure it. */
        public final Accuracy accuracy;
        /** A remark from the exporter (e.g. what the float twin is), or "". */
        public final String note;

        ModelFile(String role, String file, long bytes, String sha256, boolean requiresLce,
                  Map<String, Integer> ops, Map<Integer, Long> weightBits, Accuracy accuracy, String note) {
            this.role = role;
            this.file = file;
            this.bytes = bytes;
            this.sha256 = sha256;
            this.requiresLce = requiresLce;
            this.ops = Collections.unmodifiableMap(ops);
            this.weightBits = Collections.unmodifiableMap(weightBits);
            this.accuracy = accuracy;
            this.note = note;
        }

        /** Total operator count. */
        public int opCount() {
            int total = 0;
            for (int n : ops.values()) {
                total += n;
            }
            return total;
        }
    }

    /** Top-1 accuracy measured by the exporter on a named data set with a named engine. */
    public static final class Accuracy {
        public final double top1;
        public final int samples;
        public final String dataset;
        public final String engine;

        Accuracy(double top1, int samples, String dataset, String engine) {
            this.top1 = top1;
            this.samples = samples;
            this.dataset = dataset;
            this.engine = engine;
        }
    }

    /** Parses and validates model.json text. */
    public static ModelSpec parse(String json) throws ModelSpecException {
        Object root;
        try {
            root = Json.parse(json);
        } catch (Json.JsonException e) {
            throw new ModelSpecException("not valid JSON: " + e.getMessage());
        }
        if (!(root instanceof Map)) {
            throw new ModelSpecException("the top level must be a JSON object, got " + Fields.typeName(root));
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> top = (Map<String, Object>) root;
        checkFormatAndVersion(top);
        Fields f = new Fields();
        Builder b = new Builder();
        b.name = f.string(top, "name", "name", true);
        if (b.name != null && b.name.trim().isEmpty()) {
            f.problem("name: must not be empty");
        }
        String description = f.string(top, "description", "description", false);
        b.description = description == null ? "" : description;
        readInput(f, f.object(top, "input", "input", true), b);
        readOutput(f, f.object(top, "output", "output", true), b);
        readLabels(f, top, b);
        readModels(f, top, b);
        f.throwIfAny();
        return new ModelSpec(b);
    }

    private static void checkFormatAndVersion(Map<String, Object> top) throws ModelSpecException {
        Object format = top.get("format");
        if (!FORMAT.equals(format)) {
            throw new ModelSpecException("format: expected \"" + FORMAT + "\", got "
                    + (top.containsKey("format") ? Fields.show(format) : "nothing (missing)")
                    + "; is this a model.json written by `kbnn export-android`?");
        }
        Object version = top.get("version");
        if (!Fields.isInteger(version)) {
            throw new ModelSpecException("version: expected an integer, got "
                    + (top.containsKey("version") ? Fields.show(version) : "nothing (missing)"));
        }
        long v = ((Double) version).longValue();
        if (v > VERSION) {
            throw new ModelSpecException("version: model.json is version " + v
                    + ", newer than this app supports (" + VERSION + "); update the app or export "
                    + "with a matching kbnn");
        }
        if (v != VERSION) {
            throw new ModelSpecException("version: unknown version " + v + " (this app reads version " + VERSION + ")");
        }
    }

    private static void readInput(Fields f, Map<String, Object> input, Builder b) {
        if (input == null) {
            return;
        }
        List<Long> shape = f.intList(input, "shape", "input.shape");
        if (shape != null) {
            if (shape.size() != 4 || shape.get(0) != 1 || shape.get(3) != 1) {
                f.problem("input.shape: expected [1, height, width, 1] (one grayscale image), got " + shape);
            } else if (shape.get(1) < 1 || shape.get(2) < 1
                    || shape.get(1) > MAX_INPUT_SIDE || shape.get(2) > MAX_INPUT_SIDE) {
                f.problem("input.shape: height and width must be in 1.." + MAX_INPUT_SIDE + ", got " + shape);
            } else {
                b.inputHeight = (int) (long) shape.get(1);
                b.inputWidth = (int) (long) shape.get(2);
            }
        }
        f.expectValue(input, "dtype", "input.dtype", "float32");
        Map<String, Object> norm = f.object(input, "normalization", "input.normalization", true);
        Double scale = null;
        Double mean = null;
        Double std = null;
        if (norm != null) {
            scale = f.number(norm, "scale", "input.normalization.scale", true);
            mean = f.number(norm, "mean", "input.normalization.mean", true);
            std = f.number(norm, "std", "input.normalization.std", true);
            if (scale != null && !(scale > 0)) {
                f.problem("input.normalization.scale: must be > 0, got " + Fields.show(scale));
                scale = null;
            }
            if (std != null && !(std > 0)) {
                f.problem("input.normalization.std: must be > 0, got " + Fields.show(std));
                std = null;
            }
        }
        Map<String, Object> prep = f.object(input, "preprocessing", "input.preprocessing", true);
        Integer box = null;
        Integer threshold = null;
        if (prep != null) {
            String method = f.string(prep, "method", "input.preprocessing.method", true);
            if (method != null && !PREPROCESSING_METHOD.equals(method)) {
                f.problem("input.preprocessing.method: unknown method \"" + method
                        + "\" (this app knows \"" + PREPROCESSING_METHOD + "\")");
            }
            box = f.integer(prep, "digit_box", "input.preprocessing.digit_box", true);
            threshold = f.integer(prep, "ink_threshold", "input.preprocessing.ink_threshold", true);
            if (threshold != null && (threshold < 0 || threshold > 254)) {
                f.problem("input.preprocessing.ink_threshold: must be in 0..254, got " + threshold);
                threshold = null;
            }
            if (box != null && b.inputHeight > 0
                    && (box < 1 || box > Math.min(b.inputHeight, b.inputWidth))) {
                f.problem("input.preprocessing.digit_box: must be in 1.."
                        + Math.min(b.inputHeight, b.inputWidth) + " (the input size), got " + box);
                box = null;
            }
        }
        if (b.inputHeight > 0 && scale != null && mean != null && std != null && box != null
                && threshold != null) {
            b.preprocessing = new Preprocessor.Config(b.inputHeight, b.inputWidth, box, threshold,
                    (float) (double) scale, (float) (double) mean, (float) (double) std);
        }
    }

    private static void readOutput(Fields f, Map<String, Object> output, Builder b) {
        if (output == null) {
            return;
        }
        List<Long> shape = f.intList(output, "shape", "output.shape");
        if (shape != null) {
            if (shape.size() != 2 || shape.get(0) != 1 || shape.get(1) < 1) {
                f.problem("output.shape: expected [1, number_of_classes], got " + shape);
            } else if (shape.get(1) > 100000) {
                f.problem("output.shape: more than 100000 classes: " + shape);
            } else {
                b.numClasses = (int) (long) shape.get(1);
            }
        }
        f.expectValue(output, "dtype", "output.dtype", "float32");
        String activation = f.string(output, "activation", "output.activation", true);
        if (activation != null) {
            if (activation.equals("softmax")) {
                b.outputIsProbabilities = true;
            } else if (!activation.equals("logits")) {
                f.problem("output.activation: expected \"softmax\" or \"logits\", got \"" + activation + "\"");
            }
        }
    }

    private static void readLabels(Fields f, Map<String, Object> top, Builder b) {
        List<Object> labels = f.array(top, "labels", "labels", true);
        if (labels != null) {
            for (int i = 0; i < labels.size(); i++) {
                Object label = labels.get(i);
                if (!(label instanceof String) || ((String) label).isEmpty()) {
                    f.problem("labels[" + i + "]: expected a non-empty string, got " + Fields.show(label));
                } else {
                    b.labels.add((String) label);
                }
            }
            if (b.numClasses > 0 && labels.size() != b.numClasses) {
                f.problem("labels: " + labels.size() + " labels for " + b.numClasses
                        + " outputs (output.shape); they must match");
            }
        }
        b.labelsFile = f.string(top, "labels_file", "labels_file", false);
        if (b.labelsFile != null) {
            f.checkRelativePath(b.labelsFile, "labels_file");
        }
    }

    private static void readModels(Fields f, Map<String, Object> top, Builder b) {
        List<Object> models = f.array(top, "models", "models", true);
        if (models == null) {
            return;
        }
        if (models.isEmpty()) {
            f.problem("models: must list at least one .tflite file");
        }
        Set<String> roles = new HashSet<String>();
        Set<String> files = new HashSet<String>();
        for (int i = 0; i < models.size(); i++) {
            String path = "models[" + i + "]";
            Object item = models.get(i);
            if (!(item instanceof Map)) {
                f.problem(path + ": expected an object, got " + Fields.typeName(item));
                continue;
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> m = (Map<String, Object>) item;
            String role = f.string(m, "role", path + ".role", true);
            if (role != null && !role.equals(ROLE_BINARY) && !role.equals(ROLE_FLOAT)) {
                f.problem(path + ".role: expected \"binary\" or \"float\", got \"" + role + "\"");
                role = null;
            } else if (role != null && !roles.add(role)) {
                f.problem(path + ".role: a second \"" + role + "\" model (one of each at most)");
                role = null;
            }
            String file = f.string(m, "file", path + ".file", true);
            if (file != null && f.checkRelativePath(file, path + ".file") && !files.add(file)) {
                f.problem(path + ".file: \"" + file + "\" is listed twice");
            }
            Long bytes = f.longInteger(m, "bytes", path + ".bytes", true);
            if (bytes != null && bytes <= 0) {
                f.problem(path + ".bytes: must be > 0, got " + bytes);
            }
            String sha = f.string(m, "sha256", path + ".sha256", true);
            if (sha != null && !sha.matches("[0-9a-f]{64}")) {
                f.problem(path + ".sha256: expected 64 lowercase hex digits, got \"" + sha + "\"");
            }
            Boolean lce = f.bool(m, "requires_lce", path + ".requires_lce", true);
            Map<String, Integer> ops = readOps(f, m, path);
            Map<Integer, Long> bits = readWeightBits(f, m, path);
            Accuracy accuracy = readAccuracy(f, m, path);
            String note = f.string(m, "note", path + ".note", false);
            if (role != null && file != null && bytes != null && sha != null && lce != null && ops != null) {
                b.models.add(new ModelFile(role, file, bytes, sha, lce, ops, bits, accuracy, note == null ? "" : note));
            }
        }
    }

    private static Map<String, Integer> readOps(Fields f, Map<String, Object> m, String path) {
        Map<String, Object> raw = f.object(m, "ops", path + ".ops", true);
        if (raw == null) {
            return null;
        }
        Map<String, Integer> ops = new LinkedHashMap<String, Integer>();
        for (String op : raw.keySet()) {
            Integer count = f.integer(raw, op, path + ".ops." + op, true);
            if (count != null && count < 1) {
                f.problem(path + ".ops." + op + ": count must be >= 1, got " + count);
            } else if (count != null) {
                ops.put(op, count);
            }
        }
        return ops;
    }

    private static Map<Integer, Long> readWeightBits(Fields f, Map<String, Object> m, String path) {
        Map<Integer, Long> bits = new TreeMap<Integer, Long>();
        Map<String, Object> raw = f.object(m, "weight_bits", path + ".weight_bits", false);
        if (raw == null) {
            return bits;
        }
        for (String key : raw.keySet()) {
            int precision;
            try {
                precision = Integer.parseInt(key);
            } catch (NumberFormatException e) {
                precision = -1;
            }
            if (precision < 1 || precision > 64 || !key.equals(Integer.toString(precision))) {
                f.problem(path + ".weight_bits: key \"" + key + "\" is not a bit width in 1..64");
                continue;
            }
            Long count = f.longInteger(raw, key, path + ".weight_bits." + key, true);
            if (count != null && count < 0) {
                f.problem(path + ".weight_bits." + key + ": must be >= 0, got " + count);
            } else if (count != null) {
                bits.put(precision, count);
            }
        }
        return bits;
    }

    private static Accuracy readAccuracy(Fields f, Map<String, Object> m, String path) {
        Map<String, Object> raw = f.object(m, "accuracy", path + ".accuracy", false);
        if (raw == null) {
            return null;
        }
        String p = path + ".accuracy";
        Double top1 = f.number(raw, "top1", p + ".top1", true);
        if (top1 != null && (top1 < 0 || top1 > 1)) {
            f.problem(p + ".top1: must be a fraction in [0, 1], got " + Fields.show(top1));
            top1 = null;
        }
        Integer samples = f.integer(raw, "samples", p + ".samples", true);
        if (samples != null && samples < 1) {
            f.problem(p + ".samples: must be >= 1, got " + samples);
            samples = null;
        }
        String dataset = f.string(raw, "dataset", p + ".dataset", true);
        String engine = f.string(raw, "engine", p + ".engine", true);
        if (top1 == null || samples == null || dataset == null || engine == null) {
            return null;
        }
        return new Accuracy(top1, samples, dataset, engine);
    }

    private static final class Builder {
        String name;
        String description;
        int inputHeight;
        int inputWidth;
        Preprocessor.Config preprocessing;
        int numClasses;
        boolean outputIsProbabilities;
        final List<String> labels = new ArrayList<String>();
        String labelsFile;
        final List<ModelFile> models = new ArrayList<ModelFile>();
    }

    /** Typed access to parsed JSON that records a problem, naming the field path, for each mismatch. */
    static final class Fields {
        private final List<String> problems = new ArrayList<String>();

        void problem(String message) {
            problems.add(message);
        }

        void throwIfAny() throws ModelSpecException {
            if (!problems.isEmpty()) {
                throw new ModelSpecException(problems);
            }
        }

        private Object get(Map<String, Object> obj, String key, String path, boolean required) {
            if (!obj.containsKey(key)) {
                if (required) {
                    problem(path + ": missing");
                }
                return null;
            }
            Object value = obj.get(key);
            if (value == null && required) {
                problem(path + ": must not be null");
            }
            return value;
        }

        @SuppressWarnings("unchecked")
        Map<String, Object> object(Map<String, Object> obj, String key, String path, boolean required) {
            Object v = get(obj, key, path, required);
            if (v == null) {
                return null;
            }
            if (!(v instanceof Map)) {
                problem(path + ": expected an object, got " + typeName(v));
                return null;
            }
            return (Map<String, Object>) v;
        }

        @SuppressWarnings("unchecked")
        List<Object> array(Map<String, Object> obj, String key, String path, boolean required) {
            Object v = get(obj, key, path, required);
            if (v == null) {
                return null;
            }
            if (!(v instanceof List)) {
                problem(path + ": expected an array, got " + typeName(v));
                return null;
            }
            return (List<Object>) v;
        }

        String string(Map<String, Object> obj, String key, String path, boolean required) {
            Object v = get(obj, key, path, required);
            if (v == null) {
                return null;
            }
            if (!(v instanceof String)) {
                problem(path + ": expected a string, got " + typeName(v));
                return null;
            }
            return (String) v;
        }

        Boolean bool(Map<String, Object> obj, String key, String path, boolean required) {
            Object v = get(obj, key, path, required);
            if (v == null) {
                return null;
            }
            if (!(v instanceof Boolean)) {
                problem(path + ": expected true or false, got " + typeName(v));
                return null;
            }
            return (Boolean) v;
        }

        Double number(Map<String, Object> obj, String key, String path, boolean required) {
            Object v = get(obj, key, path, required);
            if (v == null) {
                return null;
            }
            if (!(v instanceof Double)) {
                problem(path + ": expected a number, got " + typeName(v));
                return null;
            }
            return (Double) v;
        }

        Long longInteger(Map<String, Object> obj, String key, String path, boolean required) {
            Double d = number(obj, key, path, required);
            if (d == null) {
                return null;
            }
            if (!isInteger(d)) {
                problem(path + ": expected an integer, got " + show(d));
                return null;
            }
            return d.longValue();
        }

        Integer integer(Map<String, Object> obj, String key, String path, boolean required) {
            Long value = longInteger(obj, key, path, required);
            if (value == null) {
                return null;
            }
            if (value < Integer.MIN_VALUE || value > Integer.MAX_VALUE) {
                problem(path + ": integer out of range: " + value);
                return null;
            }
            return (int) (long) value;
        }

        List<Long> intList(Map<String, Object> obj, String key, String path) {
            List<Object> raw = array(obj, key, path, true);
            if (raw == null) {
                return null;
            }
            List<Long> out = new ArrayList<Long>();
            for (Object item : raw) {
                if (!isInteger(item)) {
                    problem(path + ": expected an array of integers, got " + show(raw));
                    return null;
                }
                out.add(((Double) item).longValue());
            }
            return out;
        }

        void expectValue(Map<String, Object> obj, String key, String path, String expected) {
            String value = string(obj, key, path, true);
            if (value != null && !value.equals(expected)) {
                problem(path + ": the app supports \"" + expected + "\" only, got \"" + value + "\"");
            }
        }

        /** Asset names are plain relative paths inside the model folder. */
        boolean checkRelativePath(String name, String path) {
            boolean ok = !name.isEmpty() && !name.startsWith("/") && name.indexOf('\\') < 0
                    && name.indexOf(':') < 0;
            for (String part : name.split("/", -1)) {
                if (part.isEmpty() || part.equals(".") || part.equals("..")) {
                    ok = false;
                }
            }
            if (!ok) {
                problem(path + ": \"" + name + "\" must be a relative path inside the model folder "
                        + "(no leading '/', '..', '\\' or ':')");
            }
            return ok;
        }

        static boolean isInteger(Object value) {
            if (!(value instanceof Double)) {
                return false;
            }
            double d = (Double) value;
            return d == Math.rint(d) && Math.abs(d) <= 9.007199254740992E15; // 2^53: exact in a double
        }

        static String typeName(Object value) {
            if (value == null) {
                return "null";
            }
            if (value instanceof Map) {
                return "an object";
            }
            if (value instanceof List) {
                return "an array";
            }
            if (value instanceof String) {
                return "a string (\"" + value + "\")";
            }
            if (value instanceof Boolean) {
                return "a boolean (" + value + ")";
            }
            return "a number (" + show(value) + ")";
        }

        static String show(Object value) {
            if (value instanceof Double && isInteger(value)) {
                return Long.toString(((Double) value).longValue());
            }
            if (value instanceof String) {
                return "\"" + value + "\"";
            }
            if (value instanceof List) {
                StringBuilder out = new StringBuilder("[");
                List<?> list = (List<?>) value;
                for (int i = 0; i < list.size(); i++) {
                    out.append(i > 0 ? ", " : "").append(show(list.get(i)));
                }
                return out.append(']').toString();
            }
            return String.valueOf(value);
        }
    }
}
