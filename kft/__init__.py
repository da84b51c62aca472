"""kft: few-shot transfer learning to small, fast on-device image classifiers."""

__version__ = "0.1.0"
