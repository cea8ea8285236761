package org.kbnn.demo

import android.app.Activity
import android.graphics.Bitmap
import android.os.Bundle
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicBoolean
import org.kbnn.demo.core.Benchmark
import org.kbnn.demo.core.DigitClassifier
import org.kbnn.demo.core.ModelSpec

/** Screen 1: draw a digit; the binary model classifies it while you draw (top-3, latency). */
class DrawActivity : Activity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private val busy = AtomicBoolean(false)
    private val pending = AtomicBoolean(false)
    @Volatile
    private var classifier: DigitClassifier? = null

    private lateinit var canvasView: DigitCanvasView
    private lateinit var status: TextView
    private lateinit var predictions: TextView
    private lateinit var latency: TextView
    private lateinit var thumbnail: ImageView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_draw)
        canvasView = findViewById(R.id.canvas)
        status = findViewById(R.id.status)
        predictions = findViewById(R.id.predictions)
        latency = findViewById(R.id.latency)
        thumbnail = findViewById(R.id.thumbnail)
        findViewById<Button>(R.id.clear).setOnClickListener { canvasView.clear() }
        canvasView.onDrawingChanged = { classify() }

        status.setText(R.string.loading)
        worker.execute {
            try {
                val bundle = DemoModel.load(this)
                val role = if (bundle.flatbuffer(ModelSpec.ROLE_BINARY) != null) ModelSpec.ROLE_BINARY else ModelSpec.ROLE_FLOAT
                val engine = TfliteEngine(bundle.flatbuffer(role), bundle.spec, THREADS, useXnnpack = false)
                classifier = DigitClassifier(bundle.spec, engine, Benchmark.Clock { System.nanoTime() })
                runOnUiThread { status.text = getString(R.string.draw_hint) + "  (${bundle.spec.name}, $role)" }
            } catch (e: Exception) {
                runOnUiThread { status.text = DemoModel.explain(e) }
            }
        }
    }

    /** Classify the current drawing; while one runs, remember that another is wanted. */
    private fun classify() {
        val model = classifier ?: return
        if (!busy.compareAndSet(false, true)) {
            pending.set(true)
            return
        }
        val pixels = canvasView.pixels() // the bitmap is read on the UI thread
        val side = canvasView.bitmapSize
        worker.execute {
            val text = try {
                val result = model.classify(pixels, side, side, false, 3)
                runOnUiThread { show(result) }
                null
            } catch (e: Exception) {
                DemoModel.explain(e)
            }
            runOnUiThread {
                if (text != null) status.text = text
                busy.set(false)
                if (pending.getAndSet(false)) classify()
            }
        }
    }

    private fun show(result: DigitClassifier.Classification) {
        if (result.top.isEmpty()) {
            predictions.text = ""
            latency.text = ""
            thumbnail.setImageBitmap(null)
            return
        }
        predictions.text = result.top.joinToString("\n") {
            String.format(Locale.ROOT, "%-3s %6.2f%%", it.label, 100 * it.probability)
        }
        latency.text = String.format(
            Locale.ROOT, "inference %.2f ms · preprocessing %.2f ms", result.inferenceMs, result.preprocessMs
        )
        val spec = DemoModel.load(this).spec // already loaded: returns the cached bundle
        val argb = IntArray(result.field.size) { i ->
            val v = result.field[i]
            (0xFF shl 24) or (v shl 16) or (v shl 8) or v
        }
        val field = Bitmap.createBitmap(argb, spec.inputWidth, spec.inputHeight, Bitmap.Config.ARGB_8888)
        // enlarge without filtering, so each input pixel stays a visible square
        thumbnail.setImageBitmap(Bitmap.createScaledBitmap(field, 4 * spec.inputWidth, 4 * spec.inputHeight, false))
    }

    override fun onDestroy() {
        canvasView.onDrawingChanged = null
        worker.execute { classifier?.close() }
        worker.shutdown()
        super.onDestroy()
    }

    private companion object {
        const val THREADS = 2
    }
}
