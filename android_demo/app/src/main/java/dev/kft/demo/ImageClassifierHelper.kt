package dev.kft.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Rect
import android.graphics.RectF
import android.os.SystemClock
import com.google.mediapipe.framework.image.BitmapImageBuilder
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.core.Delegate
import com.google.mediapipe.tasks.vision.core.ImageProcessingOptions
import com.google.mediapipe.tasks.vision.core.RunningMode
import com.google.mediapipe.tasks.vision.imageclassifier.ImageClassifier

/**
 * A MediaPipe [ImageClassifier] for the kft-exported model in assets/[MODEL_FILE].
 *
 * The .tflite carries its own metadata (input size, identity normalisation, labels.txt packed in
 * the file), so nothing model-specific is configured here and the labels are the metadata's
 * category names. MediaPipe's Java BaseOptions has no thread-count setting, so the CPU delegate
 * uses MediaPipe's default threading.
 *
 * Runs in [RunningMode.IMAGE], synchronously, on the caller's thread (the camera analysis thread),
 * rather than in LIVE_STREAM:
 * - every error reaches the caller as an exception from [classify]. In LIVE_STREAM mode (tasks-vision
 *   0.10.x) an error raised while the frame is handed to the graph goes only to Log.e: TaskRunner
 *   rethrows it only when it has an error listener of its own, and ImageClassifier never gives it
 *   one (the options' error listener sees only errors in converting a result). The frame then
 *   simply never gets a result.
 * - at most one frame is in flight without any bookkeeping: the analysis thread is busy until the
 *   result is back, and CameraX (STRATEGY_KEEP_ONLY_LATEST) keeps only the newest frame meanwhile
 *   and closes the others unread, so no frame is copied only to be dropped.
 * - the time is measured around the call itself, so it contains no queue wait (see [Result]).
 *
 * Create it with [create] off the main thread; close it on the thread that calls [classify].
 */
class ImageClassifierHelper private constructor(
    private val classifier: ImageClassifier,
) : AutoCloseable {

    data class Prediction(val label: String, val score: Float)

    /**
     * The top categories (most probable first) and [classifyMs]: the wall time of one
     * `ImageClassifier.classify` call, i.e. MediaPipe's crop + rotation + resize to the model's
     * input, the model itself and the top-k step. Not the model alone (MediaPipe's API does not
     * time its parts), and no queue wait (one frame at a time).
     */
    data class Result(val top: List<Prediction>, val classifyMs: Long)

    /**
     * Classifies [square] (a region of [frame] in its pixel coordinates, from [centerSquare]) after
     * turning it clockwise by [rotationDegrees] (CameraX's `imageInfo.rotationDegrees`, the clockwise
     * turn that makes the frame upright). MediaPipe does both: ImageProcessingOptions crops the
     * region of interest first, then rotates the crop clockwise, then resizes it to the model's
     * input (224x224 for kft exports); the app resizes nothing itself. [frame] must be ARGB_8888.
     *
     * Throws whatever MediaPipe throws (MediaPipeException, IllegalArgumentException).
     */
    fun classify(frame: Bitmap, square: Rect, rotationDegrees: Int): Result {
        val w = frame.width.toFloat()
        val h = frame.height.toFloat()
        val options = ImageProcessingOptions.builder()
            .setRegionOfInterest(RectF(square.left / w, square.top / h, square.right / w, square.bottom / h))
            .setRotationDegrees(rotationDegrees)
            .build()
        val image = BitmapImageBuilder(frame).build()
        val start = SystemClock.elapsedRealtimeNanos()
        val result = classifier.classify(image, options)
        val classifyMs = (SystemClock.elapsedRealtimeNanos() - start) / 1_000_000
        val categories = result.classificationResult().classifications().firstOrNull()?.categories()
        val top = categories.orEmpty().map { c ->
            Prediction(c.categoryName().ifEmpty { "#${c.index()}" }, c.score())
        }
        return Result(top, classifyMs)
    }

    override fun close() = classifier.close()

    companion object {
        /** The asset the app loads; README.md's copy step writes a kft export here. */
        const val MODEL_FILE = "model.tflite"

        /**
         * Loads assets/[modelName]. MediaPipe keeps a native reference to the Context it is given
         * (its asset manager and stats logger), so it gets the application context: handing it an
         * Activity would keep every destroyed Activity alive.
         *
         * Throws IllegalArgumentException if the asset is missing, MediaPipeException if MediaPipe
         * cannot load it.
         */
        fun create(context: Context, modelName: String = MODEL_FILE, maxResults: Int = 3): ImageClassifierHelper {
            require(context.assets.list("")?.contains(modelName) == true) {
                "assets/$modelName is missing: copy a kft export there (see README.md)"
            }
            val baseOptions = BaseOptions.builder()
                .setModelAssetPath(modelName)
                .setDelegate(Delegate.CPU)
                .build()
            val options = ImageClassifier.ImageClassifierOptions.builder()
                .setBaseOptions(baseOptions)
                .setRunningMode(RunningMode.IMAGE)
                .setMaxResults(maxResults)
                .build()
            return ImageClassifierHelper(ImageClassifier.createFromOptions(context.applicationContext, options))
        }
    }
}
