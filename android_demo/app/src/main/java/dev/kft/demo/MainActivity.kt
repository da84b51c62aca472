package dev.kft.demo

import android.Manifest
import android.content.ActivityNotFoundException
import android.content.Intent
import android.content.pm.PackageManager
import android.graphics.Rect
import android.graphics.RectF
import android.net.Uri
import android.os.Bundle
import android.os.SystemClock
import android.provider.Settings
import android.util.Log
import android.view.Surface
import android.view.View
import android.widget.Button
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.annotation.OptIn
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.core.UseCaseGroup
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.camera.view.RotationProvider
import androidx.camera.view.TransformExperimental
import androidx.camera.view.transform.CoordinateTransform
import androidx.camera.view.transform.ImageProxyTransformFactory
import androidx.camera.view.transform.OutputTransform
import androidx.core.content.ContextCompat
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat
import androidx.core.view.doOnLayout
import androidx.core.view.isVisible
import androidx.core.view.updatePadding
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Camera preview with live top-3 predictions of a kft model.
 *
 * Each frame: CameraX delivers it (RGBA_8888) to one analysis thread with the rotation that makes
 * it upright for the way the device is held; the app takes its centre square ([centerSquare]) and
 * has MediaPipe crop, turn and resize that square for the model ([ImageClassifierHelper]); the same
 * square, mapped into the preview, is outlined by [CropGuideView]. Errors (model, camera,
 * classification) are shown on screen instead of only in the log.
 */
class MainActivity : AppCompatActivity() {

    private lateinit var previewView: PreviewView
    private lateinit var guide: CropGuideView
    private lateinit var resultText: TextView
    private lateinit var permissionPanel: View
    private lateinit var permissionText: TextView
    private lateinit var settingsButton: Button
    private lateinit var analysisExecutor: ExecutorService
    private lateinit var rotationProvider: RotationProvider

    /** Created, used and closed on the analysis thread only; null until loaded, or if loading failed. */
    private var classifier: ImageClassifierHelper? = null

    // Main thread only.
    private var imageAnalysis: ImageAnalysis? = null
    private var deviceRotation: Int? = null
    private var cameraRequested = false

    // Kept across configuration changes (onSaveInstanceState): a rotation while the system dialog
    // is up recreates this Activity, and the dialog's answer still comes to [requestCamera], so
    // the new instance must not ask a second time.
    private var permissionRequestInFlight = false
    private var askedForPermission = false

    private val requestCamera =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            permissionRequestInFlight = false
            if (granted) startCameraWhenLaidOut() else showPermissionDenied()
        }

    // Keeps the analysis target rotation current, so imageInfo.rotationDegrees always turns the
    // frame upright for the way the device is held. A 180° turn (landscape to reverse landscape)
    // does not recreate the Activity, so a rotation fixed at bind time would leave the model
    // seeing the scene upside down; RotationProvider reports every turn, and follows the device
    // even when the screen's auto-rotate is off.
    private val rotationListener = RotationProvider.Listener { rotation ->
        deviceRotation = rotation
        imageAnalysis?.targetRotation = rotation
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        previewView = findViewById(R.id.preview)
        guide = findViewById(R.id.guide)
        resultText = findViewById(R.id.result)
        permissionPanel = findViewById(R.id.permission_panel)
        permissionText = findViewById(R.id.permission_text)
        settingsButton = findViewById(R.id.open_settings)
        findViewById<Button>(R.id.ask_again).setOnClickListener { requestCameraPermission() }
        settingsButton.setOnClickListener { openAppSettings() }
        keepAboveNavigationBar(findViewById(R.id.panel))

        // Which part of the frame the screen shows. PreviewView's default, FILL_CENTER, fills the
        // screen by cutting off the sides (or top and bottom) of the frame, so on a phone the
        // model's centre square could reach past the screen's edges. FIT_CENTER shows the whole
        // frame, letterboxed, so the square is always fully visible. The preview and the analysis
        // stream are also bound with PreviewView's ViewPort (FIT for FIT_CENTER: the scene area
        // common to both streams), so ImageProxy.cropRect is exactly what the preview shows, and
        // showGuide() maps the square into the preview with CameraX's CoordinateTransform (crop,
        // rotation and the two resolutions taken into account) rather than assuming a geometry.
        // COMPATIBLE (a TextureView) because PreviewView's output transform is only guaranteed
        // there, and views laid over a SurfaceView may not appear after being hidden.
        previewView.scaleType = PreviewView.ScaleType.FIT_CENTER
        previewView.implementationMode = PreviewView.ImplementationMode.COMPATIBLE

        permissionRequestInFlight = savedInstanceState?.getBoolean(KEY_REQUEST_IN_FLIGHT) ?: false
        askedForPermission = savedInstanceState?.getBoolean(KEY_ASKED) ?: false

        rotationProvider = RotationProvider(applicationContext)
        analysisExecutor = Executors.newSingleThreadExecutor()
        analysisExecutor.execute { loadClassifier() }
    }

    override fun onStart() {
        super.onStart()
        if (!rotationProvider.addListener(ContextCompat.getMainExecutor(this), rotationListener)) {
            Log.w(TAG, "No orientation sensor: frames are turned upright for the display's rotation at start")
        }
    }

    override fun onResume() {
        super.onResume()
        // Checked again on every resume: the user may have granted the permission in Settings.
        when {
            hasCameraPermission() -> startCameraWhenLaidOut()
            permissionRequestInFlight -> Unit // the dialog is up; its answer goes to requestCamera
            !askedForPermission -> requestCameraPermission()
            else -> showPermissionDenied()
        }
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        outState.putBoolean(KEY_REQUEST_IN_FLIGHT, permissionRequestInFlight)
        outState.putBoolean(KEY_ASKED, askedForPermission)
    }

    override fun onStop() {
        rotationProvider.removeListener(rotationListener)
        super.onStop()
    }

    override fun onDestroy() {
        imageAnalysis?.clearAnalyzer() // no frame reaches the executor after this
        // Closed on the analysis thread, after any frame still being classified.
        analysisExecutor.execute {
            try {
                classifier?.close()
            } catch (e: Exception) {
                Log.e(TAG, "Closing the classifier failed", e) // the screen is going away
            }
            classifier = null
        }
        analysisExecutor.shutdown()
        super.onDestroy()
    }

    /** Analysis thread. */
    private fun loadClassifier() {
        classifier = try {
            ImageClassifierHelper.create(this)
        } catch (e: Exception) {
            Log.e(TAG, "Loading the model failed", e)
            showOnScreen(getString(R.string.model_failed, e.message ?: e.toString()))
            null
        }
    }

    private fun hasCameraPermission() =
        ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED

    private fun requestCameraPermission() {
        if (permissionRequestInFlight) return
        permissionRequestInFlight = true
        askedForPermission = true
        requestCamera.launch(Manifest.permission.CAMERA)
    }

    private fun showPermissionDenied() {
        // After a refusal, no rationale means the system will not show the dialog again ("don't
        // ask again", or refused twice on Android 11+): only the app's Settings page can grant it.
        // "Ask again" stays: after a dialog dismissed without an answer it does show the dialog.
        val blocked = !shouldShowRequestPermissionRationale(Manifest.permission.CAMERA)
        permissionText.setText(if (blocked) R.string.camera_blocked else R.string.camera_denied)
        settingsButton.isVisible = blocked
        permissionPanel.isVisible = true
    }

    private fun openAppSettings() {
        val intent = Intent(Settings.ACTION_APPLICATION_DETAILS_SETTINGS, Uri.fromParts("package", packageName, null))
        try {
            startActivity(intent) // onResume checks the permission again on the way back
        } catch (e: ActivityNotFoundException) {
            permissionText.setText(R.string.settings_failed)
        }
    }

    private fun startCameraWhenLaidOut() {
        permissionPanel.isVisible = false
        if (cameraRequested) return
        cameraRequested = true
        previewView.doOnLayout { startCamera() } // its ViewPort needs its size
    }

    private fun startCamera() {
        val providerFuture = ProcessCameraProvider.getInstance(this)
        providerFuture.addListener({
            if (isDestroyed) return@addListener
            try {
                bindCamera(providerFuture.get())
            } catch (e: Exception) {
                Log.e(TAG, "Starting the camera failed", e)
                resultText.text = getString(R.string.camera_failed, e.message ?: e.toString())
            }
        }, ContextCompat.getMainExecutor(this))
    }

    private fun bindCamera(provider: ProcessCameraProvider) {
        val viewPort = checkNotNull(previewView.viewPort) { "the preview has no size or display" }
        val preview = Preview.Builder().build()
        preview.setSurfaceProvider(previewView.surfaceProvider)
        // Default analysis size (640x480 on most devices) and aspect ratio (4:3, as the preview's).
        val analysis = ImageAnalysis.Builder()
            .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
            .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
            .setTargetRotation(deviceRotation ?: previewView.display?.rotation ?: Surface.ROTATION_0)
            .build()
        analysis.setAnalyzer(analysisExecutor) { frame -> analyze(frame) }
        val group = UseCaseGroup.Builder()
            .setViewPort(viewPort)
            .addUseCase(preview)
            .addUseCase(analysis)
            .build()
        provider.unbindAll()
        val camera = provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, group)
        imageAnalysis = analysis
        camera.cameraInfo.cameraState.observe(this) { state ->
            state.error?.let { resultText.text = getString(R.string.camera_failed, "camera error ${it.code}") }
        }
    }

    /**
     * Analysis thread, one frame at a time: the next frame comes only after this returns and
     * closes [frame] (STRATEGY_KEEP_ONLY_LATEST), so frames are skipped, not queued or copied,
     * while the model is busy. Never throws: an exception here would kill the app on the camera
     * thread, so it is shown on screen instead.
     */
    @OptIn(markerClass = [TransformExperimental::class])
    private fun analyze(frame: ImageProxy) {
        frame.use {
            try {
                val square = centerSquare(frame.cropRect)
                val frameTransform = ImageProxyTransformFactory().getOutputTransform(frame)
                runOnUiThread { showGuide(square, frameTransform) }
                val helper = classifier // null: the model did not load, and its error is on screen
                if (helper != null) {
                    val copyStart = SystemClock.elapsedRealtimeNanos()
                    val bitmap = frame.toBitmap() // the whole buffer, row padding dropped
                    val copyMs = (SystemClock.elapsedRealtimeNanos() - copyStart) / 1_000_000
                    val result = helper.classify(bitmap, square, frame.imageInfo.rotationDegrees)
                    showOnScreen(describe(result, copyMs))
                }
            } catch (e: Exception) {
                Log.e(TAG, "Classifying a frame failed", e)
                showOnScreen(getString(R.string.classify_failed, e.message ?: e.toString()))
            }
        }
    }

    /** Main thread: outlines [square] (analysis-buffer pixels of the frame [frameTransform] describes). */
    @OptIn(markerClass = [TransformExperimental::class])
    private fun showGuide(square: Rect, frameTransform: OutputTransform) {
        val previewTransform = previewView.outputTransform // null until the preview is streaming
        if (previewTransform == null) {
            guide.setSquare(null)
            return
        }
        val rect = RectF(square)
        CoordinateTransform(frameTransform, previewTransform).mapRect(rect)
        guide.setSquare(rect)
    }

    private fun describe(result: ImageClassifierHelper.Result, copyMs: Long): String {
        val lines = result.top.map { String.format(Locale.US, "%-12s %.2f", it.label, it.score) }
        return (lines + getString(R.string.timing, result.classifyMs, copyMs)).joinToString("\n")
    }

    private fun showOnScreen(text: String) {
        runOnUiThread { resultText.text = text }
    }

    private fun keepAboveNavigationBar(panel: View) {
        // targetSdk 35 draws edge to edge: pad the bottom panel clear of the system bars.
        val basePadding = panel.paddingBottom
        ViewCompat.setOnApplyWindowInsetsListener(panel) { v, insets ->
            val bars = insets.getInsets(WindowInsetsCompat.Type.systemBars())
            v.updatePadding(bottom = basePadding + bars.bottom)
            insets
        }
    }

    private companion object {
        const val TAG = "KftDemo"
        const val KEY_REQUEST_IN_FLIGHT = "permission_request_in_flight"
        const val KEY_ASKED = "asked_for_permission"
    }
}
