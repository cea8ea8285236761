package org.kbnn.demo

import android.app.Activity
import android.os.Bundle
import android.widget.Button
import android.widget.CheckBox
import android.widget.EditText
import android.widget.TextView
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import org.kbnn.demo.core.Benchmark

/**
 * Screen 2: N timed inferences of each bundled model (binary vs float twin) with 1, 2 and 4
 * threads; median and p90 latency and file size side by side (the table comes from :core).
 */
class BenchmarkActivity : Activity() {
    private var worker: ExecutorService? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_benchmark)
        val runs = findViewById<EditText>(R.id.runs)
        val run = findViewById<Button>(R.id.run)
        val xnnpackTwin = findViewById<CheckBox>(R.id.xnnpack_twin)
        val table = findViewById<TextView>(R.id.table)

        run.setOnClickListener {
            val n = runs.text.toString().toIntOrNull()
            if (n == null || n < 1 || n > 100_000) {
                runs.error = "1 … 100000"
                return@setOnClickListener
            }
            val withXnnpackTwin = xnnpackTwin.isChecked
            run.isEnabled = false
            table.setText(R.string.loading)
            val executor = Executors.newSingleThreadExecutor()
            worker = executor
            executor.execute {
                val text = try {
                    val bundle = DemoModel.load(this)
                    val plan = Benchmark.plan(bundle.spec, THREADS, withXnnpackTwin)
                    val done = ArrayList<Benchmark.Result>()
                    val benchmark = Benchmark(bundle.spec, TfliteEngine.factory(bundle), Benchmark.Clock { System.nanoTime() })
                    benchmark.run(plan, WARMUP, n) { result ->
                        done.add(result)
                        val partial = Benchmark.formatTable(ArrayList(done)) + "… ${plan.size - done.size} to go"
                        runOnUiThread { table.text = partial }
                    }
                    Benchmark.formatTable(done)
                } catch (e: InterruptedException) {
                    return@execute // the screen was closed
                } catch (e: Exception) {
                    DemoModel.explain(e)
                }
                runOnUiThread {
                    table.text = text
                    run.isEnabled = true
                }
            }
        }
    }

    override fun onDestroy() {
        worker?.shutdownNow() // interrupts the run; Benchmark stops between inferences
        super.onDestroy()
    }

    private companion object {
        val THREADS = intArrayOf(1, 2, 4)
        const val WARMUP = 5
    }
}
