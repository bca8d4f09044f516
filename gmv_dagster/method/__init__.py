"""GMValuator itself: embed, search, match, re-rank, quality, credit (no Dagster).

    from gmv_dagster.method import value_training_set
    result = value_training_set("train_folder/", "generated_folder/")
    result.values          # train_id, value, n_generated, rank
    result.attribution(id) # a generated image's contributors and weights

core.py is the one place that runs match-and-value and holds the defaults; api.py wraps it for folders and arrays.
"""

from .api import ValuationConfig, ValuationResult, value_training_set
from .core import (
    DEFAULTS,
    TEMPERATURE_DIVISOR,
    MethodSettings,
    TemperatureFit,
    fit_temperature,
    match,
    value,
)
from .credit import compute_credits, softmax_weights, training_values
from .matching import MatchParams
from .search import HnswParams

__all__ = [
    "DEFAULTS",
    "HnswParams",
    "MatchParams",
    "MethodSettings",
    "TEMPERATURE_DIVISOR",
    "TemperatureFit",
    "ValuationConfig",
    "ValuationResult",
    "compute_credits",
    "fit_temperature",
    "match",
    "softmax_weights",
    "training_values",
    "value",
    "value_training_set",
]
