"""A torch device per asset, so embedding can run on a GPU while quality runs on the CPU."""

import dagster as dg
import torch
from pydantic import Field

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class DeviceResource(dg.ConfigurableResource):
    """Where an asset runs its torch work: `auto`, `cpu`, `cuda` or `cuda:N`."""

    device: str = Field(default="auto", description="auto (cuda if available), cpu, cuda, cuda:N")
    batch_size: int = Field(default=256, gt=0, description="images per forward pass")
    precision: str = Field(default="fp32", description="fp32, fp16 or bf16 (fp16/bf16 only on cuda)")

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(self.device)
        except RuntimeError as exc:
            raise ValueError(f"device {self.device!r} is not a torch device: use auto, cpu, cuda or cuda:N") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} was requested but CUDA is not available here: use cpu or auto")
        return dev

    def torch_dtype(self) -> torch.dtype:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        dtype = PRECISIONS[self.precision]
        if dtype != torch.float32 and self.torch_device().type != "cuda":
            raise ValueError(f"precision {self.precision} needs a CUDA device; this asset runs on the CPU")
        return dtype

    def describe(self) -> dict:
        return {"device": str(self.torch_device()), "precision": self.precision, "batch_size": self.batch_size}
