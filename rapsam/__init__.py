"""rapsam: RAP-SAM (Real-Time All-Purpose Segment Anything) in pure PyTorch.

Re-exports only; see README for the API.
"""

from .config import BackboneConfig, DecoderConfig, ModelConfig, NeckConfig
from .modeling.rapsam import Prompts, RapSam, RapSamOutput
from .models import build_model, get_config, list_models, rapsam_r18, rapsam_r50, rapsam_seaformer, rapsam_stdc1
from .weights import CheckpointError

__version__ = "0.1.0"

__all__ = [
    "BackboneConfig",
    "CheckpointError",
    "DecoderConfig",
    "ModelConfig",
    "NeckConfig",
    "Prompts",
    "RapSam",
    "RapSamOutput",
    "build_model",
    "get_config",
    "list_models",
    "rapsam_r18",
    "rapsam_r50",
    "rapsam_seaformer",
    "rapsam_stdc1",
]
