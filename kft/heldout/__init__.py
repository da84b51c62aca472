"""The honest number: accuracy on images a model never trained or was selected on, with its 95%
interval (``stats``), the sheet of its mistakes (``mistakes``), and scoring any model on a
labelled photo folder (``folder_eval``). TensorFlow-free unless a Keras model is scored.

    from kft.heldout import evaluate_on_folder
    evaluate_on_folder("export/run/model_int8.tflite", "new_photos/")["summary"]   # '84.0% (95% CI ...)'
"""

from kft.heldout.folder_eval import evaluate_on_folder, format_report, labelled_photos
from kft.heldout.mistakes import write_mistakes
from kft.heldout.stats import accuracy_line, per_class, wilson_interval

__all__ = ["accuracy_line", "evaluate_on_folder", "format_report", "labelled_photos", "per_class",
           "wilson_interval", "write_mistakes"]
