package org.kbnn.demo

import android.app.Activity
import android.os.Bundle
import android.widget.TextView
import java.util.concurrent.Executors
import org.kbnn.demo.core.ModelInfo

/** Screen 3: what model.json says — name, accuracy, weight bits, operators of each model. */
class ModelInfoActivity : Activity() {
    private val worker = Executors.newSingleThreadExecutor()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_model_info)
        val info = findViewById<TextView>(R.id.info)
        worker.execute {
            val text = try {
                ModelInfo.describe(DemoModel.load(this).spec).joinToString("\n")
            } catch (e: Exception) {
                DemoModel.explain(e)
            }
            runOnUiThread { info.text = text }
        }
    }

    override fun onDestroy() {
        worker.shutdown()
        super.onDestroy()
    }
}
