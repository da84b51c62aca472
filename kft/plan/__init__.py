"""Training plans: the schema (dataclasses whose fields declare themselves), the shipped
strategies, and the resolver that applies a user's changes.

    from kft.plan import resolve_plan
    plan = resolve_plan("mobilenet_v2", settings={"image_size": 96})   # the default strategy, changed
    plan.protocol, [s.name for s in plan.stages]                         # ('fixed', ['probe', 'top'])
"""

from kft.plan.options import OptionError, choices_of
from kft.plan.reference import key_reference, plan_yaml
from kft.plan.resolve import labels_split, legacy_settings, parse_setting, resolve_plan
from kft.plan.schema import CIFAR_REST, FIXED, HOLDOUT, PROTOCOLS, REFIT, Augment, Plan, SelfTraining, Stage
from kft.plan.strategies import DEFAULT as DEFAULT_STRATEGY, build_plan
from kft.plan.validate import load_plan, plan_from_dict, validate

__all__ = ["CIFAR_REST", "DEFAULT_STRATEGY", "FIXED", "HOLDOUT", "PROTOCOLS", "REFIT", "Augment", "OptionError",
           "Plan", "SelfTraining", "Stage", "build_plan", "choices_of", "key_reference", "labels_split", "legacy_settings",
           "load_plan", "parse_setting", "plan_from_dict", "plan_yaml", "resolve_plan", "validate"]
