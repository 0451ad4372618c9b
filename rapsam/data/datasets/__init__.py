"""Readers for the standard segmentation formats, each taking the publishers' own paths.

See :mod:`rapsam.data.datasets.base` for the sample types and the error/skip policy.
"""

from rapsam.data.datasets.ade20k import ADE20KSemanticDataset, read_ade_object_info
from rapsam.data.datasets.base import (
    DatasetFormatError,
    ImageSample,
    SegmentationDataset,
    SkippedRecord,
    VideoSample,
)
from rapsam.data.datasets.coco_instances import CocoInstancesDataset
from rapsam.data.datasets.coco_panoptic import CocoPanopticDataset
from rapsam.data.datasets.vipseg import VIPSegDataset
from rapsam.data.datasets.ytvis import YouTubeVISDataset

__all__ = [
    "ADE20KSemanticDataset",
    "CocoInstancesDataset",
    "CocoPanopticDataset",
    "DatasetFormatError",
    "ImageSample",
    "SegmentationDataset",
    "SkippedRecord",
    "VIPSegDataset",
    "VideoSample",
    "YouTubeVISDataset",
    "read_ade_object_info",
]
