"""arengine: a real-time AR interaction engine for live-commerce streams."""

from arengine.types import FaceLandmarks, Frame, HandLandmarks, Scene, StageTiming

__version__ = "0.1.0"
__all__ = ["FaceLandmarks", "Frame", "HandLandmarks", "Scene", "StageTiming", "__version__"]
