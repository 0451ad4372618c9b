"""Run RAP-SAM without the torch model: ``OnnxRapSam`` executes a ``rapsam export onnx`` directory with
onnxruntime behind the same ``extract_features`` / ``decode`` interface the predictors call.

``onnxruntime`` is imported only when an ``OnnxRapSam`` is created (``pip install rapsam[onnx]``).
"""

from .ort import OnnxRapSam

__all__ = ["OnnxRapSam"]
