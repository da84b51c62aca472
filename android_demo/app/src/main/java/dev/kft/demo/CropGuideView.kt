package dev.kft.demo

import android.content.Context
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.view.View

/**
 * Outlines the region the model sees and dims the rest of the preview.
 *
 * It lies exactly over the PreviewView (same parent, both match_parent, no padding), so a rectangle
 * in PreviewView coordinates, as CameraX's CoordinateTransform gives it, is drawn where it belongs.
 * Nothing is drawn until [setSquare] gets a rectangle.
 */
class CropGuideView @JvmOverloads constructor(
    context: Context,
    attrs: AttributeSet? = null,
) : View(context, attrs) {

    private var square: RectF? = null

    private val outline = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        style = Paint.Style.STROKE
        color = Color.WHITE
        strokeWidth = 2f * resources.displayMetrics.density
    }

    private val shade = Paint().apply { color = Color.argb(96, 0, 0, 0) }

    /** The model's region in this view's coordinates, or null to draw nothing. Call on the main thread. */
    fun setSquare(rect: RectF?) {
        if (rect == square) return
        square = rect?.let { RectF(it) }
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        val r = square ?: return
        val w = width.toFloat()
        val h = height.toFloat()
        canvas.drawRect(0f, 0f, w, r.top, shade)
        canvas.drawRect(0f, r.bottom, w, h, shade)
        canvas.drawRect(0f, r.top, r.left, r.bottom, shade)
        canvas.drawRect(r.right, r.top, w, r.bottom, shade)
        canvas.drawRect(r, outline)
    }
}
