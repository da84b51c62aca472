"""How hard ``kft export`` works the machine while it scores: ``ScoringSpeed``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ScoringSpeed"]


@dataclass(frozen=True)
class ScoringSpeed:
    """How hard an export works the machine; the files and every number of the report are the
    same whatever it says (float kernels may round a batch differently: last digits only).

    ``batch_size``: held-out images per interpreter invoke, every variant (1: one at a time,
    as a device runs them). ``workers``: interpreters per variant scoring parts of each chunk
    at the same time, 1 thread each (None: one per CPU; 1: one interpreter on every CPU).
    ``keras_batch_size``: images per Keras call. ``shared_chunks``: upsample each chunk of
    held-out images once for all variants (else once per variant). ``fallback_batch_size`` /
    ``fallback_workers``: the int8 fallback's scoring of every candidate model on the
    calibration images (workers None: one per CPU). ``reuse_int8``: prepare the int8 model
    (``int8_prep``) once for its conversion, its fallback and the quantization report (else
    once each). ``keras_from_run``: take the Keras model's logits from the run's
    ``test_logits.npz`` where its model file and images match (``export_run``; else score it).
    Example: ``export_model(..., speed=ScoringSpeed.one_at_a_time())``.
    """

    batch_size: int = 8
    workers: int | None = None
    keras_batch_size: int = 128
    shared_chunks: bool = True
    fallback_batch_size: int = 8
    fallback_workers: int | None = None
    reuse_int8: bool = True
    keras_from_run: bool = True

    @classmethod
    def one_at_a_time(cls) -> "ScoringSpeed":
        """Export as it ran until 2026-12-07 (``benchmarks/export_speed.py``'s "before"): every
        image alone through each variant (one interpreter on every CPU), Keras at 128, the
        fallback one image at a time on 1 thread, the int8 preparation repeated, the Keras model
        scored again."""
        return cls(batch_size=1, workers=1, keras_batch_size=128, shared_chunks=False, fallback_batch_size=1,
                   fallback_workers=1, reuse_int8=False, keras_from_run=False)
