package org.kbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import org.junit.Test;

public class ModelSpecTest {
    private static String valid() throws Exception {
        return TestResources.text("spec/model_v1.json");
    }

    /** The spec with {@code from} replaced by {@code to} (which must occur exactly once). */
    private static String edited(String from, String to) throws Exception {
        String json = valid();
        int at = json.indexOf(from);
        if (at < 0 || json.indexOf(from, at + 1) >= 0) {
            throw new AssertionError("fixture edit must match once: " + from);
        }
        return json.substring(0, at) + to + json.substring(at + from.length());
    }

    private static ModelSpecException rejected(String json) {
        try {
            ModelSpec.parse(json);
        } catch (ModelSpecException e) {
            return e;
        }
        throw new AssertionError("model.json was accepted but should not be:\n" + json);
    }

    private static void assertProblem(ModelSpecException e, String expected) {
        for (String p : e.problems()) {
            if (p.contains(expected)) {
                return;
            }
        }
        fail("no problem mentions <" + expected + ">; got " + e.problems());
    }

    @Test
    public void parsesTheVersion1Contract() throws Exception {
        ModelSpec spec = ModelSpec.parse(valid());
        assertEquals("binarynet_mnist", spec.name);
        assertEquals(28, spec.inputHeight);
        assertEquals(28, spec.inputWidth);
        assertEquals(20, spec.preprocessing.digitBox);
        assertEquals(0, spec.preprocessing.inkThreshold);
        assertEquals(255f, spec.preprocessing.scale, 0f);
        assertEquals((float) 0.1307, spec.preprocessing.mean, 0f);
        assertEquals((float) 0.3081, spec.preprocessing.std, 0f);
        assertEquals(10, spec.numClasses);
        assertTrue(spec.outputIsProbabilities);
        assertEquals(Arrays.asList("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"), spec.labels);
        assertEquals("labels.txt", spec.labelsFile);
        assertEquals(2, spec.models.size());
        ModelSpec.ModelFile binary = spec.model(ModelSpec.ROLE_BINARY);
        assertEquals("binarynet_mnist.tflite", binary.file);
        assertEquals(110212L, binary.bytes);
        assertTrue(binary.requiresLce);
        assertEquals(Integer.valueOf(2), binary.ops.get("LceBconv2d"));
        assertEquals(6, binary.opCount());
        assertEquals(Arrays.asList("LceQuantize", "LceBconv2d", "FULLY_CONNECTED", "SOFTMAX"),
                Arrays.asList(binary.ops.keySet().toArray()));
        assertEquals(Long.valueOf(1162240L), binary.weightBits.get(1));
        assertEquals(0.991, binary.accuracy.top1, 0.0);
        assertEquals(1000, binary.accuracy.samples);
        ModelSpec.ModelFile twin = spec.model(ModelSpec.ROLE_FLOAT);
        assertFalse(twin.requiresLce);
        assertNull(twin.accuracy);
        assertTrue(twin.weightBits.isEmpty());
    }

    @Test
    public void ignoresUnknownKeys() throws Exception {
        ModelSpec spec = ModelSpec.parse(edited("\"created_by\"", "\"future_field\": {\"x\": 1}, \"created_by\""));
        assertEquals("binarynet_mnist", spec.name);
    }

    @Test
    public void logitsOutputIsRecorded() throws Exception {
        assertFalse(ModelSpec.parse(edited("\"activation\": \"softmax\"", "\"activation\": \"logits\"")).outputIsProbabilities);
    }

    @Test
    public void refusesOtherFormatsAndVersionsFirst() throws Exception {
        assertEquals(Arrays.asList("version: model.json is version 2, newer than this app supports (1); "
                        + "update the app or export with a matching kbnn"),
                rejected(edited("\"version\": 1", "\"version\": 2")).problems());
        assertProblem(rejected(edited("\"version\": 1", "\"version\": 0")), "unknown version 0");
        assertProblem(rejected(edited("\"version\": 1", "\"version\": \"1\"")), "version: expected an integer, got \"1\"");
        assertProblem(rejected(edited("\"version\": 1,", "")), "version: expected an integer, got nothing (missing)");
        assertProblem(rejected(edited("\"version\": 1", "\"version\": 1.5")), "version: expected an integer, got 1.5");
        assertProblem(rejected(edited("\"kbnn-android-model\"", "\"tflite-metadata\"")),
                "format: expected \"kbnn-android-model\", got \"tflite-metadata\"");
        assertProblem(rejected("[1, 2]"), "the top level must be a JSON object, got an array");
        assertProblem(rejected("{\"format\": "), "not valid JSON: line 1, column 12: unexpected end of input");
    }

    @Test
    public void namesEachMissingField() throws Exception {
        String[][] cases = {
            {"\"name\": \"binarynet_mnist\",", "name: missing"},
            {"\"dtype\": \"float32\",\n    \"normalization\"", "input.dtype: missing"},
            {"\"scale\": 255.0, ", "input.normalization.scale: missing"},
            {"\"digit_box\": 20, ", "input.preprocessing.digit_box: missing"},
            {", \"activation\": \"softmax\"", "output.activation: missing"},
            {"\"sha256\": \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",",
                "models[0].sha256: missing"},
            {"\"requires_lce\": false,", "models[1].requires_lce: missing"},
        };
        for (String[] c : cases) {
            String json = edited(c[0], c[0].startsWith("\"dtype\"") ? "\"normalization\"" : "");
            assertProblem(rejected(json), c[1]);
        }
    }

    @Test
    public void reportsAllProblemsTogether() throws Exception {
        String json = edited("\"shape\": [1, 10]", "\"shape\": [10]")
                .replace("\"std\": 0.3081", "\"std\": 0")
                .replace("\"method\": \"mnist_centre_of_mass\"", "\"method\": \"resize_only\"");
        ModelSpecException e = rejected(json);
        assertProblem(e, "output.shape: expected [1, number_of_classes], got [10]");
        assertProblem(e, "input.normalization.std: must be > 0, got 0");
        assertProblem(e, "input.preprocessing.method: unknown method \"resize_only\"");
        assertEquals(e.problems().toString(), 3, e.problems().size());
        assertTrue(e.getMessage().startsWith("invalid model.json: "));
    }

    @Test
    public void checksShapesAndRanges() throws Exception {
        String[][] cases = {
            {"\"shape\": [1, 28, 28, 1]", "\"shape\": [28, 28]", "input.shape: expected [1, height, width, 1] (one grayscale image), got [28, 28]"},
            {"\"shape\": [1, 28, 28, 1]", "\"shape\": [1, 28, 28, 3]", "got [1, 28, 28, 3]"},
            {"\"shape\": [1, 28, 28, 1]", "\"shape\": [1, 28.5, 28, 1]", "input.shape: expected an array of integers, got [1, 28.5, 28, 1]"},
            {"\"shape\": [1, 28, 28, 1]", "\"shape\": [1, 0, 28, 1]", "height and width must be in 1..1024"},
            {"\"shape\": [1, 28, 28, 1]", "\"shape\": \"1x28x28x1\"", "input.shape: expected an array, got a string"},
            {"\"dtype\": \"float32\",\n    \"normalization\"", "\"dtype\": \"uint8\",\n    \"normalization\"", "input.dtype: the app supports \"float32\" only, got \"uint8\""},
            {"\"digit_box\": 20", "\"digit_box\": 29", "input.preprocessing.digit_box: must be in 1..28 (the input size), got 29"},
            {"\"ink_threshold\": 0", "\"ink_threshold\": 255", "input.preprocessing.ink_threshold: must be in 0..254, got 255"},
            {"\"scale\": 255.0", "\"scale\": -1", "input.normalization.scale: must be > 0"},
            {"\"mean\": 0.1307", "\"mean\": null", "input.normalization.mean: must not be null"},
            {"\"activation\": \"softmax\"", "\"activation\": \"sigmoid\"", "output.activation: expected \"softmax\" or \"logits\""},
            {"\"labels\": [\"0\", ", "\"labels\": [", "labels: 9 labels for 10 outputs (output.shape); they must match"},
            {"\"labels\": [\"0\", ", "\"labels\": [\"\", ", "labels[0]: expected a non-empty string"},
            {"\"bytes\": 110212", "\"bytes\": 0", "models[0].bytes: must be > 0, got 0"},
            {"\"sha256\": \"0123", "\"sha256\": \"X123", "models[0].sha256: expected 64 lowercase hex digits"},
            {"\"role\": \"float\"", "\"role\": \"binary\"", "models[1].role: a second \"binary\" model"},
            {"\"role\": \"float\"", "\"role\": \"int8\"", "models[1].role: expected \"binary\" or \"float\", got \"int8\""},
            {"\"file\": \"binarynet_mnist_float.tflite\"", "\"file\": \"../secrets.tflite\"", "models[1].file: \"../secrets.tflite\" must be a relative path"},
            {"\"file\": \"binarynet_mnist_float.tflite\"", "\"file\": \"/sdcard/x.tflite\"", "must be a relative path"},
            {"\"file\": \"binarynet_mnist_float.tflite\"", "\"file\": \"binarynet_mnist.tflite\"", "models[1].file: \"binarynet_mnist.tflite\" is listed twice"},
            {"\"LceBconv2d\": 2", "\"LceBconv2d\": 0", "models[0].ops.LceBconv2d: count must be >= 1, got 0"},
            {"\"1\": 1162240", "\"one\": 1162240", "models[0].weight_bits: key \"one\" is not a bit width in 1..64"},
            {"\"top1\": 0.991", "\"top1\": 99.1", "models[0].accuracy.top1: must be a fraction in [0, 1], got 99.1"},
            {"\"requires_lce\": true", "\"requires_lce\": \"yes\"", "models[0].requires_lce: expected true or false, got a string (\"yes\")"},
            {"\"labels_file\": \"labels.txt\"", "\"labels_file\": \"a\\\\b.txt\"", "labels_file: \"a\\b.txt\" must be a relative path"},
        };
        for (String[] c : cases) {
            assertProblem(rejected(edited(c[0], c[1])), c[2]);
        }
    }

    @Test
    public void needsAtLeastOneModel() throws Exception {
        String json = valid();
        int start = json.indexOf("\"models\": [");
        int end = json.lastIndexOf(']');
        String empty = json.substring(0, start) + "\"models\": [" + json.substring(end);
        assertProblem(rejected(empty), "models: must list at least one .tflite file");
    }
}
