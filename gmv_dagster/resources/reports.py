"""Settings every criterion report shares: which baselines run and how deep rankings go."""

import os

import dagster as dg
from pydantic import Field

from ..evaluation.experiments import Suite
from ..evaluation.methods import SimilaritySetup
from ..evaluation.tracin import TracInParams
from ..method.embedders import make_embedder
from ..method.rerank import make_pair_distance


class ReportSettings(dg.ConfigurableResource):
    """Baselines and their settings, one set for every criterion so that rows compare like with like."""

    depth: int = Field(default=50, gt=0, description="contributors ranked per generated image (C1 up to this k)")
    rerank: list[str] = Field(default=["l2", "lpips"], description="re-rank baselines to try (l2, lpips)")
    lpips_weights_path: str | None = Field(
        default=None,
        description="AlexNet state dict for the lpips re-rank baseline; without it lpips is reported as not run",
    )
    tracin_factor: int = Field(default=24, gt=0, description="TracIn projection: factor^2 dimensions per layer")
    seed: int = Field(default=0, description="seed of the random baselines and the random removal set")
    retrain_workers: int = Field(
        default=0,
        ge=0,
        description="processes that retrain the demo generator for LDS and group LDS on the CPU, one torch thread "
        "each (0: one per CPU core; 1: one after another in the step's process)",
    )
    embedders: list[str] = Field(
        default=["pixels"],
        description="other backbones GMValuator also runs with (method gmv_<backbone>, its own "
        "temperature), beside the configured one; the configured one is skipped",
    )

    def workers(self) -> int:
        """The retrain pool's size: retrain_workers, or one per CPU core."""
        return self.retrain_workers or os.cpu_count() or 1

    def suite(self, setup: SimilaritySetup, device, backbone: str) -> Suite:
        reranks = {}
        for name in self.rerank:
            if name == "lpips" and self.lpips_weights_path is None:
                continue  # reported as "not run" with the reason, never replaced by another distance
            reranks[name] = make_pair_distance(name, self.lpips_weights_path, device)
        embedders = {name: make_embedder(name) for name in self.embedders if name != backbone}
        return Suite(
            SimilaritySetup(setup.settings, self.depth),
            reranks,
            TracInParams(factor=self.tracin_factor, seed=self.seed),
            self.seed,
            device,
            embedders,
        )
