"""Predictors wrapping a ``RapSam`` model: image (panoptic/instance/semantic), interactive, video."""

from .image import ImagePrediction, PanopticPredictor
from .interactive import InteractivePredictor
from .video import FrameResult, VideoPredictor, VideoState  # noqa: F401

__all__ = ["FrameResult", "ImagePrediction", "InteractivePredictor", "PanopticPredictor", "VideoPredictor", "VideoState"]
