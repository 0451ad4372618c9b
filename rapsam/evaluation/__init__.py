"""Evaluation protocols of RAP-SAM, re-implemented to equal their reference code (numpy only).

Each module follows one reference implementation rule by rule (see ``shared/design/metrics.md``):

* :mod:`.panoptic_quality` - COCO PQ (panopticapi ``pq_compute``);
* :mod:`.instance_ap` - COCO mask AP (pycocotools ``COCOeval``, as mmdet's ``CocoMetric``);
* :mod:`.semantic` - mIoU / pixel accuracy (mmseg ``IoUMetric``);
* :mod:`.interactive` - RITM/SimpleClick NoC, COCO-SAM single click, box-prompt mIoU;
* :mod:`.vis_ap` - YouTube-VIS AP (youtubevos/cocoapi ``YTVOSeval``);
* :mod:`.vpq` - VPQ (mcahny/vps, VIPSeg);
* :mod:`.davis` - DAVIS J / F / J&F (davis2017-evaluation);
* :mod:`.io` - readers and RLE helpers with clear errors; :mod:`.report` - tables and JSON.

All scores are on the 0-1 scale (the references' internal scale); print x100.
"""

from .davis import DavisEvaluator, DavisResult, davis_evaluate_folders, evaluate_davis_sequence
from .instance_ap import (
                          APResult,
                          InstanceAPEvaluator,
                          evaluate_instance_ap,
                          load_coco_gt,
                          masks_to_coco_results,
)
from .interactive import (
                          CocoSamEvaluator,
                          CocoSamResult,
                          MeanIoUResult,
                          NoCEvaluator,
                          NoCResult,
                          box_prompt_miou,
                          deepest_point,
                          next_click,
                          run_clicks,
)
from .io import (
                          EvaluationInputError,
                          MissingPredictionError,
                          SegmentMismatchError,
                          encode_mask,
                          id2rgb,
                          rgb2id,
)
from .panoptic_quality import PanopticPredictionWriter, PQEvaluator, PQResult, pq_compute
from .report import format_result, write_json
from .semantic import SemanticEvaluator, SemanticResult
from .vis_ap import VISAPEvaluator, evaluate_vis_ap, tracks_to_ytvis_results
from .vpq import PanopticFrame, VPQResult, vpq_compute, vpq_compute_vipseg

__all__ = [
    "APResult", "CocoSamEvaluator", "CocoSamResult", "DavisEvaluator", "DavisResult",
    "EvaluationInputError", "InstanceAPEvaluator", "MeanIoUResult", "MissingPredictionError",
    "NoCEvaluator", "NoCResult", "PQEvaluator", "PQResult", "PanopticFrame",
    "PanopticPredictionWriter",
    "SegmentMismatchError", "SemanticEvaluator", "SemanticResult", "VISAPEvaluator",
    "VPQResult", "box_prompt_miou", "davis_evaluate_folders", "deepest_point", "encode_mask",
    "evaluate_davis_sequence", "evaluate_instance_ap", "evaluate_vis_ap", "format_result",
    "id2rgb", "load_coco_gt", "masks_to_coco_results", "next_click", "pq_compute", "rgb2id",
    "run_clicks", "tracks_to_ytvis_results", "vpq_compute", "vpq_compute_vipseg", "write_json",
]
