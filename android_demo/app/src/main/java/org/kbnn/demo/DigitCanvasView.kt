package org.kbnn.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.Rect
import android.util.AttributeSet
import android.view.MotionEvent
import android.view.View

/**
 * A square drawing surface: white strokes on black, like MNIST, kept in a fixed 280×280 bitmap
 * whatever the screen density. The stroke is 22 px wide, about what a digit filling the square
 * has after MNIST's 20 px box scaling (≈ 1.5–2 px strokes).
 */
class DigitCanvasView(context: Context, attrs: AttributeSet?) : View(context, attrs) {
    /** Called after each stroke segment and when a stroke ends or the canvas is cleared. */
    var onDrawingChanged: ((strokeFinished: Boolean) -> Unit)? = null

    val bitmapSize = 280
    private val bitmap = Bitmap.createBitmap(bitmapSize, bitmapSize, Bitmap.Config.ARGB_8888)
    private val canvas = Canvas(bitmap)
    private val ink = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        color = Color.WHITE
        style = Paint.Style.STROKE
        strokeWidth = 22f
        strokeCap = Paint.Cap.ROUND
        strokeJoin = Paint.Join.ROUND
    }
    private val source = Rect(0, 0, bitmapSize, bitmapSize)
    private val target = Rect()
    private var lastX = 0f
    private var lastY = 0f

    init {
        bitmap.eraseColor(Color.BLACK)
    }

    fun clear() {
        bitmap.eraseColor(Color.BLACK)
        invalidate()
        onDrawingChanged?.invoke(true)
    }

    /** The drawing as ARGB pixels, row-major (what :core's Preprocessor takes). Call on the UI thread. */
    fun pixels(): IntArray {
        val pixels = IntArray(bitmapSize * bitmapSize)
        bitmap.getPixels(pixels, 0, bitmapSize, 0, 0, bitmapSize, bitmapSize)
        return pixels
    }

    override fun onMeasure(widthMeasureSpec: Int, heightMeasureSpec: Int) {
        val side = MeasureSpec.getSize(widthMeasureSpec)
        setMeasuredDimension(side, side)
    }

    override fun onDraw(screen: Canvas) {
        target.set(0, 0, width, height)
        screen.drawBitmap(bitmap, source, target, null)
    }

    override fun onTouchEvent(event: MotionEvent): Boolean {
        val scale = bitmapSize.toFloat() / width
        when (event.actionMasked) {
            MotionEvent.ACTION_DOWN -> {
                lastX = event.x * scale
                lastY = event.y * scale
                canvas.drawPoint(lastX, lastY, ink)
                parent?.requestDisallowInterceptTouchEvent(true)
            }
            MotionEvent.ACTION_MOVE -> {
                for (i in 0 until event.historySize) {
                    lineTo(event.getHistoricalX(i) * scale, event.getHistoricalY(i) * scale)
                }
                lineTo(event.x * scale, event.y * scale)
                onDrawingChanged?.invoke(false)
            }
            MotionEvent.ACTION_UP -> {
                lineTo(event.x * scale, event.y * scale)
                performClick()
                onDrawingChanged?.invoke(true)
            }
            else -> return false
        }
        invalidate()
        return true
    }

    override fun performClick(): Boolean = super.performClick()

    private fun lineTo(x: Float, y: Float) {
        canvas.drawLine(lastX, lastY, x, y, ink)
        lastX = x
        lastY = y
    }
}
