package org.kbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.stream.Stream;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * The app's asset check on a real export: {@code assets_example/} was written by {@code kbnn
 * export-android} from a tiny larq model (see android_demo/README.md), so this also checks that
 * what the Python exporter writes passes the JVM validator.
 */
public class ModelAssetsTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    private File exampleCopy() throws IOException {
        Path source = TestResources.path("assets_example");
        File dir = tmp.newFolder("assets");
        try (Stream<Path> files = Files.list(source)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                Files.copy(p, dir.toPath().resolve(p.getFileName()), StandardCopyOption.REPLACE_EXISTING);
            }
        }
        return dir;
    }

    private static ModelSpecException rejected(File dir) throws IOException {
        try {
            ModelAssets.load(ModelAssets.directory(dir));
        } catch (ModelSpecException e) {
            return e;
        }
        throw new AssertionError("assets in " + dir + " were accepted but should not be");
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
    public void exportedExamplePassesTheValidator() throws Exception {
        ModelAssets.Bundle bundle = ModelAssets.load(ModelAssets.directory(TestResources.path("assets_example").toFile()));
        ModelSpec spec = bundle.spec;
        assertEquals(28, spec.inputHeight);
        assertEquals(10, spec.numClasses);
        ModelSpec.ModelFile binary = spec.model(ModelSpec.ROLE_BINARY);
        ModelSpec.ModelFile twin = spec.model(ModelSpec.ROLE_FLOAT);
        assertNotNull(binary);
        assertNotNull(twin);
        assertTrue(binary.requiresLce);
        assertFalse(twin.requiresLce);
        assertTrue("the binary model uses LCE's binary convolution: " + binary.ops, binary.ops.containsKey("LceBconv2d"));
        assertFalse(twin.ops.containsKey("LceBconv2d"));
        assertTrue("binary smaller than the float twin", binary.bytes < twin.bytes);
        assertEquals(binary.bytes, bundle.flatbuffer(ModelSpec.ROLE_BINARY).length);
        assertTrue(ModelAssets.isTfliteFlatbuffer(bundle.flatbuffer(ModelSpec.ROLE_FLOAT)));
        assertTrue(binary.weightBits.containsKey(1));
    }

    @Test
    public void detectsAChangedModelFile() throws Exception {
        File dir = exampleCopy();
        ModelSpec spec = ModelAssets.load(ModelAssets.directory(dir)).spec;
        Path file = dir.toPath().resolve(spec.model("binary").file);
        byte[] data = Files.readAllBytes(file);
        data[data.length - 1] ^= 1;
        Files.write(file, data);
        assertProblem(rejected(dir), "(" + spec.model("binary").file + "): SHA-256 is ");
    }

    @Test
    public void detectsMissingAndTruncatedFiles() throws Exception {
        File dir = exampleCopy();
        ModelSpec spec = ModelAssets.load(ModelAssets.directory(dir)).spec;
        Files.delete(dir.toPath().resolve(spec.model("float").file));
        Path binary = dir.toPath().resolve(spec.model("binary").file);
        byte[] data = Files.readAllBytes(binary);
        Files.write(binary, java.util.Arrays.copyOf(data, data.length - 10));
        ModelSpecException e = rejected(dir);
        assertProblem(e, "(" + spec.model("float").file + "): file not found in " + dir.getPath());
        assertProblem(e, "file has " + (data.length - 10) + " bytes, model.json says " + data.length);
    }

    @Test
    public void detectsLabelsFileDisagreeingWithModelJson() throws Exception {
        File dir = exampleCopy();
        Files.write(dir.toPath().resolve("labels.txt"), "zero\none\n".getBytes(StandardCharsets.UTF_8));
        assertProblem(rejected(dir), "labels_file (labels.txt): holds [zero, one], model.json labels are [0, 1,");
    }

    @Test
    public void explainsAMissingModelJson() throws Exception {
        File empty = tmp.newFolder("empty");
        ModelSpecException e = rejected(empty);
        assertEquals("no model.json in " + empty.getPath() + "; export one with `kbnn export-android --out <assets folder>`",
                e.problems().get(0));
    }

    @Test
    public void refusesAFileThatIsNotTflite() throws Exception {
        File dir = tmp.newFolder("fake");
        byte[] notTflite = "this is not a flatbuffer".getBytes(StandardCharsets.UTF_8);
        Files.write(dir.toPath().resolve("m.tflite"), notTflite);
        String json = TestResources.text("spec/model_v1.json");
        int start = json.indexOf("\"models\": [");
        json = json.substring(0, start) + "\"models\": [{\"role\": \"binary\", \"file\": \"m.tflite\", \"bytes\": "
                + notTflite.length + ", \"sha256\": \"" + ModelAssets.sha256Hex(notTflite)
                + "\", \"requires_lce\": true, \"ops\": {}}]}";
        json = json.replace("\"labels_file\": \"labels.txt\",", "");
        Files.write(dir.toPath().resolve("model.json"), json.getBytes(StandardCharsets.UTF_8));
        ModelSpecException e = rejected(dir);
        assertEquals(1, e.problems().size());
        assertProblem(e, "models[0] (m.tflite): not a TFLite flatbuffer");
    }

    @Test
    public void sha256MatchesAKnownVector() {
        // FIPS 180-2 example: SHA-256("abc").
        assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                ModelAssets.sha256Hex("abc".getBytes(StandardCharsets.US_ASCII)));
    }

    @Test
    public void labelLinesIgnoreTheFinalNewlineOnly() {
        assertEquals(java.util.Arrays.asList("a", "", "b"), ModelAssets.lines("a\r\n\nb\n"));
        assertEquals(java.util.Arrays.asList("a", "b"), ModelAssets.lines("\uFEFFa\nb"));
    }
}
