"""Export RAP-SAM for other runtimes: ``export_onnx(model, out_dir)`` writes the three ONNX graphs
(image encoder, prompt decoder, panoptic decoder) and a JSON sidecar that ``rapsam.runtime.OnnxRapSam``
runs with onnxruntime. Not imported by the inference path.
"""

from .onnx import ExportResult, export_onnx

__all__ = ["ExportResult", "export_onnx"]
