"""Latency benchmark of exported models: ``kft bench``.

``run.benchmark`` times .tflite models with the LiteRT interpreter (and .keras
models in a TensorFlow subprocess, for comparison), ``macs`` counts
multiply-adds from the model itself, ``inputs`` picks real or natural-looking
images, ``report`` prints and plots. Importing this package does not import
TensorFlow.
"""

from kft.bench.macs import keras_macs, tflite_macs
from kft.bench.run import benchmark, parse_threads

__all__ = ["benchmark", "keras_macs", "parse_threads", "tflite_macs"]
