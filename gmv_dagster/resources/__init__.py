"""ConfigurableResources: devices, storage, data sources, embedders, quality scorers."""

from .device import DeviceResource
from .embedder import EmbedderResource
from .quality import QualityScorerResource
from .reports import ReportSettings
from .storage import GmvHome, ImageSources, build_resources

__all__ = [
    "DeviceResource",
    "EmbedderResource",
    "GmvHome",
    "ImageSources",
    "QualityScorerResource",
    "ReportSettings",
    "build_resources",
]
