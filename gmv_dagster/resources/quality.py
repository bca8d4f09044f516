"""The quality scorer behind q_j (pyiqa stays behind this interface)."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np
import torch
from pydantic import Field

from ..method.niqe import BLOCK
from ..method.quality import (
    DEFAULT_METRIC,
    METRICS,
    Calibration,
    QualityModel,
    calibrate,
    load_quality_model,
)


class QualityScorerResource(dg.ConfigurableResource):
    """matched_detail (default: each generated image against its matched training images), niqe_refit (NIQE refit on
    the training images), maniqa / topiq_nr / musiq (local weights), piqe, none (q = 1)."""

    metric: str = Field(default=DEFAULT_METRIC, description=f"one of {', '.join(METRICS)}")
    weights_path: str | None = Field(default=None, description="weights file for maniqa / topiq_nr / musiq")
    input_size: int = Field(default=224, gt=0, description="px fed to learned metrics")
    niqe_block: int = Field(
        default=BLOCK,
        ge=16,
        multiple_of=2,
        description=(
            "niqe_refit's block size in px (pyiqa's 96). Smaller is faster on small images but loses heavy blur: "
            "see docs/PERFORMANCE.md"
        ),
    )

    def calibrate(
        self,
        reference: list[np.ndarray],
        device: torch.device,
        seed: int,
        work_dir: Path,
        progress: Callable[[int, int], None] | None = None,
    ) -> Calibration:
        return calibrate(
            self.metric,
            reference,
            device,
            seed,
            work_dir,
            self.weights_path,
            self.input_size,
            progress=progress,
            niqe_block=self.niqe_block,
        )

    def fit(self, reference: list[np.ndarray], device: torch.device, seed: int, work_dir: Path) -> QualityModel:
        return load_quality_model(self.calibrate(reference, device, seed, work_dir), device)
