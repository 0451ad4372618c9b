"""Predictors wrapping a ``RapSam`` model: image (panoptic/instance/semantic), interactive, video."""

from .image import ImagePrediction, PanopticPredictor
from .interactive import InteractivePredictor

__all__ = ["ImagePrediction", "InteractivePredictor", "PanopticPredictor"]
