package dev.kft.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.RectF
import android.os.SystemClock
import com.google.mediapipe.framework.image.BitmapImageBuilder
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.core.Delegate
import com.google.mediapipe.tasks.vision.core.ImageProcessingOptions
import com.google.mediapipe.tasks.vision.core.RunningMode
import com.google.mediapipe.tasks.vision.imageclassifier.ImageClassifier
import com.google.mediapipe.tasks.vision.imageclassifier.ImageClassifierResult

/**
 * Owns a MediaPipe [ImageClassifier] in LIVE_STREAM mode for a kft-exported model in assets/.
 *
 * The .tflite carries its own metadata (input size, identity normalisation, labels.txt), so
 * nothing model-specific is configured here. MediaPipe's Java BaseOptions has no thread-count
 * setting, so the CPU delegate runs with MediaPipe's default threading.
 *
 * Results arrive on a MediaPipe thread through [listener]; callers post them to the UI.
 */
class ImageClassifierHelper(
    context: Context,
    private val listener: Listener,
    modelName: String = MODEL_FILE,
    maxResults: Int = 3,
    /** Classify the centred square of each frame instead of the whole (stretched) frame. */
    private val centerCrop: Boolean = false,
) : AutoCloseable {

    data class Prediction(val label: String, val score: Float)

    interface Listener {
        fun onResult(top: List<Prediction>, inferenceMs: Long)
        fun onError(message: String)
    }

    private val classifier: ImageClassifier
    private var lastTimestampMs = -1L

    init {
        require(context.assets.list("")?.contains(modelName) == true) {
            "assets/$modelName is missing: copy a kft export there (see README.md)"
        }
        val baseOptions = BaseOptions.builder()
            .setModelAssetPath(modelName)
            .setDelegate(Delegate.CPU)
            .build()
        val options = ImageClassifier.ImageClassifierOptions.builder()
            .setBaseOptions(baseOptions)
            .setRunningMode(RunningMode.LIVE_STREAM)
            .setMaxResults(maxResults)
            .setResultListener { result, _ -> deliver(result) }
            .setErrorListener { e -> listener.onError(e.message ?: e.toString()) }
            .build()
        classifier = ImageClassifier.createFromOptions(context, options)
    }

    /** Queue an upright ARGB_8888 frame; call from one thread (the camera analysis thread). */
    fun classifyAsync(frame: Bitmap) {
        // LIVE_STREAM rejects timestamps that do not strictly increase.
        val timestampMs = maxOf(SystemClock.uptimeMillis(), lastTimestampMs + 1)
        lastTimestampMs = timestampMs
        val image = BitmapImageBuilder(frame).build()
        classifier.classifyAsync(image, processingOptions(frame.width, frame.height), timestampMs)
    }

    override fun close() = classifier.close()

    private fun processingOptions(width: Int, height: Int): ImageProcessingOptions {
        val builder = ImageProcessingOptions.builder()
        if (centerCrop && width != height) {
            // Normalised square ROI centred on the longer side; MediaPipe crops, then resizes.
            val side = minOf(width, height).toFloat()
            val dx = (1f - side / width) / 2f
            val dy = (1f - side / height) / 2f
            builder.setRegionOfInterest(RectF(dx, dy, 1f - dx, 1f - dy))
        }
        return builder.build()
    }

    private fun deliver(result: ImageClassifierResult) {
        // Time from handing the frame over to the result: MediaPipe's resize plus inference.
        val inferenceMs = SystemClock.uptimeMillis() - result.timestampMs()
        val categories = result.classificationResult().classifications().firstOrNull()?.categories()
        val top = categories.orEmpty().map { c ->
            Prediction(c.categoryName().ifEmpty { "#${c.index()}" }, c.score())
        }
        listener.onResult(top, inferenceMs)
    }

    companion object {
        const val MODEL_FILE = "model.tflite"
    }
}
