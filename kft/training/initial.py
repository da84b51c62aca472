"""The classifier as a run starts, and putting a model back to that start.

    model = initial_model(plan, num_classes=10, input_size=32, seed=0, weights="imagenet")
"""

from __future__ import annotations

from kft.model import block_layers, build_classifier, dropout_rng_variables
from kft.plan import Plan
from kft.training.trainer import scope

__all__ = ["initial_model", "reset_to_initial"]


def initial_model(plan: Plan, num_classes: int, input_size: int, seed: int, weights: str, strategy=None):
    """The classifier as a run starts: seeded head, backbone ``weights`` (imagenet/none/file),
    its variables in ``strategy``'s scope when there is one."""
    import keras

    keras.utils.set_random_seed(seed)
    with scope(strategy):
        return build_classifier(plan.backbone, num_classes, image_size=plan.image_size, input_size=input_size,
                                weights=weights, dropout=plan.dropout, seed=seed)


def reset_to_initial(model, plan: Plan, data, seed: int, weights: str, blocks=None) -> None:
    """Give ``model`` the weights and dropout generator state a run starts with (seeded, so
    they equal the selection run's start); the frozen layers, hence the cache, are unchanged.
    ``blocks``: reset only these blocks' weights (a top student keeps the teacher's others)."""
    fresh = initial_model(plan, len(data.class_names), int(data.train.x.shape[1]), seed, weights)
    if blocks is None:
        model.set_weights(fresh.get_weights())
    else:
        mine, initial = block_layers(model), block_layers(fresh)
        for block in blocks:
            for layer, start in zip(mine[block], initial[block], strict=True):
                layer.set_weights(start.get_weights())
    for v, a in zip(dropout_rng_variables(model), dropout_rng_variables(fresh), strict=True):
        v.assign(a.numpy())
