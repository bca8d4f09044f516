"""ConfigurableResources: devices, storage, data sources, embedders, quality scorers, the method's settings."""

from .device import DeviceResource
from .embedder import EmbedderResource
from .method import MethodResource
from .quality import QualityScorerResource
from .reports import ReportSettings
from .storage import GmvHome, ImageSources, build_resources

__all__ = [
    "DeviceResource",
    "EmbedderResource",
    "GmvHome",
    "ImageSources",
    "MethodResource",
    "QualityScorerResource",
    "ReportSettings",
    "build_resources",
]
