package org.kbnn.demo

import android.app.Activity
import android.content.Intent
import android.os.Bundle
import android.widget.Button
import android.widget.TextView
import java.util.concurrent.Executors
import org.kbnn.demo.core.Benchmark
import org.kbnn.demo.core.ModelSpec

/** Start screen: loads and validates the model assets, then offers the three screens. */
class MainActivity : Activity() {
    private val worker = Executors.newSingleThreadExecutor()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        val status = findViewById<TextView>(R.id.status)
        val buttons = listOf(
            findViewById<Button>(R.id.open_draw) to DrawActivity::class.java,
            findViewById<Button>(R.id.open_benchmark) to BenchmarkActivity::class.java,
            findViewById<Button>(R.id.open_info) to ModelInfoActivity::class.java,
        )
        for ((button, screen) in buttons) {
            button.isEnabled = false
            button.setOnClickListener { startActivity(Intent(this, screen)) }
        }
        worker.execute {
            val text = try {
                val spec = DemoModel.load(this).spec
                val binary = spec.model(ModelSpec.ROLE_BINARY)
                val twin = spec.model(ModelSpec.ROLE_FLOAT)
                runOnUiThread { buttons.forEach { it.first.isEnabled = true } }
                buildString {
                    append("${spec.name}: ${spec.numClasses} classes, ${spec.inputHeight}×${spec.inputWidth} input\n")
                    binary?.let { append("binary: ${it.file}, ${Benchmark.formatBytes(it.bytes)}\n") }
                    twin?.let { append("float twin: ${it.file}, ${Benchmark.formatBytes(it.bytes)}\n") }
                }
            } catch (e: Exception) {
                DemoModel.explain(e)
            }
            runOnUiThread { status.text = text }
        }
    }

    override fun onDestroy() {
        worker.shutdown()
        super.onDestroy()
    }
}
