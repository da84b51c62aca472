"""On-device style inference for exported .tflite classifiers, without TensorFlow.

Uses ai-edge-litert (or tflite-runtime) and Pillow only; TensorFlow is imported
solely as the last interpreter fallback when neither is installed.
"""

from kft.runtime.classifier import Classifier
from kft.runtime.interpreter import load_interpreter

__all__ = ["Classifier", "load_interpreter"]
