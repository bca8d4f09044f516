"""The method's settings between embeddings and values, as one resource that every asset ranking or crediting reads.

`train_index`, `credit_temperature`, `matches`, `credits`, the index's recall check and the reports take their k,
K', re-rank, flips, index and temperature settings from here, so that one run can never rank with one k and fit the
temperature to another. Set them in run config under `resources: {method: {config: {...}}}` (or in the Launchpad);
the defaults are method.core.DEFAULTS, written once there.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from ..method.core import DEFAULTS, TEMPERATURE_DIVISOR, TEMPERATURE_SAMPLE, MethodSettings
from ..method.matching import INDEX_MODES, MatchParams
from ..method.rerank import RERANKERS, PairDistance, make_pair_distance
from ..method.search import DTYPES, METRICS, HnswParams

_M, _H = DEFAULTS.match, DEFAULTS.hnsw


class MethodResource(dg.ConfigurableResource):
    """GMValuator's settings: ranking (k, K', re-rank, flips), the index, the credit temperature, and the recall
    checks' sample."""

    k: int = Field(default=_M.k, gt=0, description="contributors kept per generated image (top k)")
    candidates: int = Field(
        default=_M.candidates, gt=0, description="K': recalled before re-ranking (at least k are: max(K', k))"
    )
    rerank: str = Field(
        default="none",
        description=f"{' | '.join(RERANKERS)}: none, l2 (pixels), aligned (offline, "
        "robust to shifts of up to 3 px), lpips (local AlexNet file)",
    )
    rerank_weights_path: str | None = Field(default=None, description="AlexNet state dict for rerank=lpips")
    flips: bool = Field(
        default=_M.flips,
        description="also match each generated image's mirror image (left-right), and take that orientation when it "
        "is much nearer (flip_ratio): finds mirror images of training images, which a generator trained with random "
        "flips emits; off where a mirror image is another thing (a digit, a letter). Costs a second embedding and "
        "search per generated image",
    )
    flip_ratio: float = Field(
        default=_M.flip_ratio,
        gt=0,
        le=1,
        description="with flips, a generated image is matched as a mirror image when its mirror image's nearest "
        "training image is nearer than flip_ratio x its own nearest's distance",
    )
    index_mode: str = Field(
        default=_M.index_mode, description=f"{' | '.join(INDEX_MODES)}; auto = exact below exact_below"
    )
    exact_below: int = Field(
        default=_M.exact_below, ge=0, description="training images below which auto uses exact search"
    )
    metric: str = Field(default=_M.metric, description=" | ".join(METRICS))
    dtype: str = Field(default=_H.dtype, description=f"{' | '.join(DTYPES)} (vectors stored in the index)")
    connectivity: int = Field(default=_H.connectivity, gt=0)
    expansion_add: int = Field(default=_H.expansion_add, gt=0)
    expansion_search: int = Field(default=_H.expansion_search, gt=0)
    temperature: float | None = Field(
        default=DEFAULTS.temperature,
        gt=0,
        description="tau of the credit softmax; unset: credit_temperature's, fitted to the similarity's distance scale",
    )
    temperature_sample: int = Field(
        default=TEMPERATURE_SAMPLE, gt=0, description="training images whose neighbours set the fitted tau's spread"
    )
    temperature_divisor: float = Field(
        default=TEMPERATURE_DIVISOR, gt=0, description="fitted tau = median (d_k - d_1) / divisor"
    )
    recall_k: int = Field(default=10, gt=0, description="k of the index's recall@k against exact search")
    recall_sample: int = Field(
        default=200,
        ge=0,
        description="queries of the recall checks against exact search over every training vector (train_index's "
        "and its check: training vectors; matches': the batch's generated images, the one part of a batch that grows "
        "with n, 1.5 s at 1M x 128); 0: not measured",
    )
    seed: int = Field(default=0, description="seed of the temperature's sample and of the recall checks' samples")

    def settings(self, metric: str | None = None) -> MethodSettings:
        """The settings as the method's functions take them; `metric`: the stored index's, where one exists (an
        index is searched with the metric it was built with)."""
        metric = metric or self.metric
        match = MatchParams(
            k=min(self.k, self.candidates),  # at_depth then keeps k and recalls at least as many
            candidates=self.candidates,
            metric=metric,
            index_mode=self.index_mode,
            exact_below=self.exact_below,
            flips=self.flips,
            flip_ratio=self.flip_ratio,
        ).at_depth(self.k)
        hnsw = HnswParams(metric, self.dtype, self.connectivity, self.expansion_add, self.expansion_search)
        return MethodSettings(match, hnsw, self.temperature)

    def ranking(self) -> dict:
        """What the ranking's distances depend on (K' as used: at least k): recorded with the fitted temperature,
        which holds only for the ranking it was fitted to."""
        match = self.settings().match
        return {"k": match.k, "candidates": match.candidates, "rerank": self.rerank}

    def pair_distance(self, device) -> PairDistance | None:
        """The re-rank's distance on `device`, or None without a re-rank."""
        return make_pair_distance(self.rerank, self.rerank_weights_path, device)
