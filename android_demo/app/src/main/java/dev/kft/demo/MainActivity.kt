package dev.kft.demo

import android.Manifest
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.graphics.Matrix
import android.os.Bundle
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat
import androidx.core.view.updatePadding
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Camera preview with live top-3 predictions of a kft model.
 *
 * CameraX delivers RGBA frames to a single analysis thread (keeping only the latest frame), each
 * frame is turned upright and handed to [ImageClassifierHelper]; results come back asynchronously
 * and are shown in a text overlay.
 */
class MainActivity : AppCompatActivity(), ImageClassifierHelper.Listener {

    private lateinit var previewView: PreviewView
    private lateinit var resultText: TextView
    private lateinit var analysisExecutor: ExecutorService

    @Volatile
    private var classifier: ImageClassifierHelper? = null

    private val requestCamera =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            if (granted) startCamera() else resultText.setText(R.string.camera_denied)
        }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        previewView = findViewById(R.id.preview)
        resultText = findViewById(R.id.result)
        keepAboveNavigationBar(resultText)
        analysisExecutor = Executors.newSingleThreadExecutor()

        classifier = try {
            ImageClassifierHelper(this, this, centerCrop = CENTER_CROP)
        } catch (e: RuntimeException) {
            resultText.text = getString(R.string.model_failed, e.message)
            return
        }

        val granted = ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) ==
            PackageManager.PERMISSION_GRANTED
        if (granted) startCamera() else requestCamera.launch(Manifest.permission.CAMERA)
    }

    override fun onDestroy() {
        super.onDestroy()
        // Close on the analysis thread, so no frame is mid-classification when the model goes.
        val helper = classifier
        classifier = null
        analysisExecutor.execute { helper?.close() }
        analysisExecutor.shutdown()
    }

    private fun startCamera() {
        val providerFuture = ProcessCameraProvider.getInstance(this)
        providerFuture.addListener({
            val preview = Preview.Builder().build()
            preview.setSurfaceProvider(previewView.surfaceProvider)
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(analysisExecutor) { frame -> analyze(frame) }
            try {
                val provider = providerFuture.get()
                provider.unbindAll()
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
            } catch (e: Exception) {
                resultText.text = getString(R.string.camera_failed, e.message)
            }
        }, ContextCompat.getMainExecutor(this))
    }

    /** Runs on the analysis thread. */
    private fun analyze(frame: ImageProxy) {
        val bitmap = frame.use { it.toUprightBitmap() }
        classifier?.classifyAsync(bitmap)
    }

    override fun onResult(top: List<ImageClassifierHelper.Prediction>, inferenceMs: Long) {
        val lines = top.map { String.format(Locale.US, "%-12s %.2f", it.label, it.score) }
        val text = (lines + getString(R.string.inference_ms, inferenceMs)).joinToString("\n")
        runOnUiThread { resultText.text = text }
    }

    override fun onError(message: String) {
        runOnUiThread { resultText.text = getString(R.string.classify_failed, message) }
    }

    private fun keepAboveNavigationBar(view: TextView) {
        // targetSdk 35 draws edge to edge: pad the overlay clear of the system bars.
        val basePadding = view.paddingBottom
        ViewCompat.setOnApplyWindowInsetsListener(view) { v, insets ->
            val bars = insets.getInsets(WindowInsetsCompat.Type.systemBars())
            v.updatePadding(bottom = basePadding + bars.bottom)
            insets
        }
    }

    private companion object {
        /** false: the whole frame is stretched to the model's square input; true: centre square. */
        const val CENTER_CROP = false
    }
}

/** The frame as an ARGB_8888 bitmap rotated to display orientation (what the camera saw upright). */
private fun ImageProxy.toUprightBitmap(): Bitmap {
    val bitmap = toBitmap() // RGBA_8888 output: copies the pixels, dropping any row padding
    val degrees = imageInfo.rotationDegrees
    if (degrees == 0) return bitmap
    val matrix = Matrix().apply { postRotate(degrees.toFloat()) }
    return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, true)
}
