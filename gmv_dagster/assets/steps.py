"""What a step needs besides its metadata: the op tags that ask for a GPU, progress logging, its own partition."""

import time

# Under the dagster-k8s executor these ask for one GPU for the op's pod (see README, Devices).
GPU_TAGS = {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}}


class Progress:
    """Logs counts and rates for long loops, at most every `every` seconds."""

    def __init__(self, log, what: str, total: int, every: float = 5.0):
        self.log, self.what, self.total, self.every = log, what, total, every
        self.done, self.start, self.last = 0, time.perf_counter(), 0.0

    def __call__(self, n: int, total: int | None = None) -> None:
        """`n` more done (of `total`, when the loop learns it only once it starts)."""
        self.done += n
        if total is not None:
            self.total = total
        now = time.perf_counter()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            self.log.info(f"{self.what}: {self.done}/{self.total} ({rate:,.0f}/s)")

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def own_partition(context) -> str | None:
    """The asset's own partition key; None for an unpartitioned asset, also inside a partitioned run."""
    return context.partition_key if context.assets_def.partitions_def is not None else None
