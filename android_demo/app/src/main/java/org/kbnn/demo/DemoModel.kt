package org.kbnn.demo

import android.content.Context
import android.content.res.AssetManager
import java.io.InputStream
import org.kbnn.demo.core.ModelAssets
import org.kbnn.demo.core.ModelSpecException

/** The exported model (model.json + flatbuffers in the APK's assets), loaded and validated once. */
object DemoModel {
    @Volatile
    private var bundle: ModelAssets.Bundle? = null

    /** Reads and checks the assets (size, SHA-256, labels) with :core; call off the UI thread. */
    fun load(context: Context): ModelAssets.Bundle =
        bundle ?: synchronized(this) {
            bundle ?: ModelAssets.load(AssetSource(context.applicationContext.assets)).also { bundle = it }
        }

    private class AssetSource(private val assets: AssetManager) : ModelAssets.Source {
        override fun open(name: String): InputStream = assets.open(name)

        override fun describe(): String = "the APK's assets (app/src/main/assets)"
    }

    /** A message a user can act on, for any failure while loading or running the model. */
    fun explain(error: Throwable): String = when {
        error is ModelSpecException ->
            "The model assets are not usable:\n" + error.problems().joinToString("\n") { "• $it" } +
                "\n\nRe-export them with `kbnn export-android` and rebuild the app."
        error is UnsatisfiedLinkError || (error.message ?: "").contains("custom op", ignoreCase = true) ->
            "TFLite cannot run LCE's ops ($error). Build the app with LCE's AAR " +
                "(app/libs/lce-lite.aar), not the stock tensorflow-lite library."
        else -> error.toString()
    }
}
