package org.kbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.List;
import org.junit.Test;

public class ModelInfoTest {

    @Test
    public void describesNameAccuracyBitsAndOps() throws Exception {
        List<String> lines = ModelInfo.describe(ModelSpec.parse(TestResources.text("spec/model_v1.json")));
        String text = String.join("\n", lines);
        assertEquals("Model: binarynet_mnist", lines.get(0));
        assertTrue(text, text.contains("Input: 28×28 grayscale, x = (v/255 − 0.1307) / 0.3081; digit box 20 px"));
        assertTrue(text, text.contains("Output: 10 classes (softmax): 0 1 2 3 4 5 6 7 8 9"));
        assertTrue(text, text.contains("binary model: binarynet_mnist.tflite, 107.6 KiB, needs LCE ops"));
        assertTrue(text, text.contains("  accuracy: 99.10% top-1 on 1000 images of MNIST test (first 1000); LCE interpreter"));
        assertTrue(text, text.contains("  weights: 1-bit 99.8% (1,162,240), 32-bit 0.2% (2,570)"));
        assertTrue(text, text.contains("  ops (6): LceQuantize ×2, LceBconv2d ×2, FULLY_CONNECTED ×1, SOFTMAX ×1"));
        assertTrue(text, text.contains("float model: binarynet_mnist_float.tflite, 3.27 MiB\n  accuracy: not measured"));
    }
}
