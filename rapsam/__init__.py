"""rapsam: RAP-SAM (Real-Time All-Purpose Segment Anything) in pure PyTorch.

Re-exports only; see README for the API.
"""

from .config import BackboneConfig, DecoderConfig, ModelConfig, NeckConfig, VideoConfig
from .modeling.fuse import fuse_conv_bn, optimize_for_inference
from .modeling.rapsam import Prompts, RapSam, RapSamOutput
from .models import build_model, get_config, list_models, rapsam_r18, rapsam_r50, rapsam_seaformer, rapsam_stdc1
from .weights import CheckpointError

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "OnnxRapSam":  # lazy: the onnx runtime backend is an optional extra
        from .runtime import OnnxRapSam

        return OnnxRapSam
    raise AttributeError(f"module 'rapsam' has no attribute {name!r}")

__all__ = [
    "BackboneConfig",
    "CheckpointError",
    "DecoderConfig",
    "ModelConfig",
    "NeckConfig",
    "OnnxRapSam",
    "Prompts",
    "RapSam",
    "RapSamOutput",
    "VideoConfig",
    "build_model",
    "fuse_conv_bn",
    "get_config",
    "list_models",
    "optimize_for_inference",
    "rapsam_r18",
    "rapsam_r50",
    "rapsam_seaformer",
    "rapsam_stdc1",
]
