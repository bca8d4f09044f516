"""The GMValuator method as pure functions on arrays and tables (no Dagster).

    from gmv_dagster.valuation import value_training_set
    result = value_training_set("train_folder/", "generated_folder/")
    result.values          # train_id, value, n_generated, rank
    result.attribution(id) # a generated image's contributors and weights
"""

from .api import DEFAULT_TEMPERATURE, ValuationConfig, ValuationResult, value_training_set
from .credit import compute_credits, softmax_weights, training_values
from .matching import MatchParams
from .search import HnswParams

__all__ = [
    "DEFAULT_TEMPERATURE",
    "HnswParams",
    "MatchParams",
    "ValuationConfig",
    "ValuationResult",
    "compute_credits",
    "softmax_weights",
    "training_values",
    "value_training_set",
]
