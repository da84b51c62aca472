"""Per-block learning rates: one Keras optimizer per LR group.

Keras 3 has no parameter groups, and scaling gradients instead is wrong for
Adam (its update is invariant to gradient scale). So each distinct learning-rate
multiplier gets its own optimizer instance over its own variables; all of them
apply one shared gradient computation in the train step. A block with
multiplier 0 gets no optimizer: its weights do not move.
"""

from __future__ import annotations

from dataclasses import dataclass

from kft.plan import Stage


@dataclass
class LRGroup:
    multiplier: float
    blocks: list[str]
    variables: list
    optimizer: object


def _schedule(stage: Stage, base_lr: float, steps_per_epoch: int):
    import keras

    if stage.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(base_lr, decay_steps=max(1, stage.max_epochs * steps_per_epoch))
    return base_lr


def _optimizer(stage: Stage, lr):
    import keras

    if stage.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if stage.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=stage.weight_decay)
    return keras.optimizers.SGD(lr, momentum=stage.momentum, weight_decay=stage.weight_decay or None)


def build_groups(stage: Stage, variables, block_of: dict[int, str], steps_per_epoch: int) -> list[LRGroup]:
    """Group ``variables`` (the stage's trainable ones) by their block's LR multiplier."""
    by_mult: dict[float, LRGroup] = {}
    for v in variables:
        block = block_of[id(v)]
        mult = float(stage.lr_multipliers.get(block, 1.0))
        if mult == 0.0:
            continue
        group = by_mult.get(mult)
        if group is None:
            opt = _optimizer(stage, _schedule(stage, stage.learning_rate * mult, steps_per_epoch))
            group = by_mult[mult] = LRGroup(mult, [], [], opt)
        if block not in group.blocks:
            group.blocks.append(block)
        group.variables.append(v)
    groups = sorted(by_mult.values(), key=lambda g: -g.multiplier)
    for g in groups:
        g.optimizer.build(g.variables)
    return groups


def apply_gradients(groups: list[LRGroup], grads_by_var: dict[int, object]) -> None:
    """Let each group's optimizer apply the gradients of its own variables."""
    for g in groups:
        g.optimizer.apply_gradients([(grads_by_var[id(v)], v) for v in g.variables])


def current_lr(groups: list[LRGroup]) -> float:
    """Learning rate of the multiplier-1 group (or the largest one), for the history."""
    if not groups:
        return 0.0
    g = next((g for g in groups if g.multiplier == 1.0), groups[0])
    return float(g.optimizer.learning_rate.numpy()) / g.multiplier if g.multiplier else 0.0
