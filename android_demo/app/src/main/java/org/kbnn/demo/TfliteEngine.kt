package org.kbnn.demo

import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.kbnn.demo.core.Benchmark
import org.kbnn.demo.core.ModelAssets
import org.kbnn.demo.core.ModelSpec
import org.tensorflow.lite.Interpreter

/**
 * One flatbuffer in TFLite's Interpreter (from LCE's AAR, whose native library registers LCE's
 * custom ops). XNNPACK is off unless asked for: LCE models run without TFLite's default
 * delegate, as LCE's own interpreter does (see README.md).
 */
class TfliteEngine(
    flatbuffer: ByteArray,
    spec: ModelSpec,
    threads: Int,
    useXnnpack: Boolean,
) : Benchmark.Engine {
    private val interpreter: Interpreter
    private val inputBuffer: ByteBuffer
    private val outputArray: Array<FloatArray>

    init {
        // The Interpreter needs a direct buffer that stays alive as long as it does.
        val model = ByteBuffer.allocateDirect(flatbuffer.size).order(ByteOrder.nativeOrder())
        model.put(flatbuffer).rewind()
        val options = Interpreter.Options().setNumThreads(threads).setUseXNNPACK(useXnnpack)
        interpreter = Interpreter(model, options)
        val expected = intArrayOf(1, spec.inputHeight, spec.inputWidth, 1)
        val actual = interpreter.getInputTensor(0).shape()
        if (!actual.contentEquals(expected)) {
            interpreter.close()
            throw IllegalStateException(
                "the flatbuffer's input shape is ${actual.contentToString()}, " +
                    "model.json says ${expected.contentToString()}"
            )
        }
        inputBuffer = ByteBuffer.allocateDirect(4 * spec.inputHeight * spec.inputWidth)
            .order(ByteOrder.nativeOrder())
        outputArray = arrayOf(FloatArray(spec.numClasses))
    }

    override fun run(input: FloatArray, output: FloatArray) {
        inputBuffer.rewind()
        inputBuffer.asFloatBuffer().put(input)
        interpreter.run(inputBuffer, outputArray)
        System.arraycopy(outputArray[0], 0, output, 0, output.size)
    }

    override fun close() = interpreter.close()

    companion object {
        /** Engines for the benchmark: the variant picks the model, threads and XNNPACK. */
        fun factory(bundle: ModelAssets.Bundle): Benchmark.EngineFactory =
            Benchmark.EngineFactory { model, variant ->
                TfliteEngine(bundle.flatbuffer(model.role), bundle.spec, variant.threads, variant.xnnpack)
            }
    }
}
