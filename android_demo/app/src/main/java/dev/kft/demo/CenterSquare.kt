package dev.kft.demo

import android.graphics.Rect

/**
 * The crop rule of this app, in one place: the model sees the largest square centred in the camera
 * frame, and the guide over the preview outlines that same square. It is the rule of kft's web app
 * (camera frames are cropped to their centre square; photo files are classified whole).
 *
 * Takes the frame's region in its buffer (`ImageProxy.cropRect`, in unrotated buffer pixels) and
 * returns the square in the same coordinates. A square centred in the frame is its own image under
 * the frame's 90/180/270° turn to upright (to within half a pixel when width - height is odd), so
 * cropping before turning gives the centre square of the upright frame.
 *
 * Example: a 640x480 buffer, Rect(0, 0, 640, 480) -> Rect(80, 0, 560, 480);
 * Rect(10, 20, 650, 500) -> Rect(90, 20, 570, 500).
 */
fun centerSquare(frame: Rect): Rect {
    val side = minOf(frame.width(), frame.height())
    val left = frame.left + (frame.width() - side) / 2
    val top = frame.top + (frame.height() - side) / 2
    return Rect(left, top, left + side, top + side)
}
