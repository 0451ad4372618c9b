"""Training and evaluation data: standard-format readers, taxonomy merging, synthetic data.

* :mod:`rapsam.data.datasets`: COCO panoptic / instances, YouTube-VIS, VIPSeg and ADE20K readers.
* :mod:`rapsam.data.taxonomy`: merge class lists across datasets (the official ``ConcatOVDataset``
  rule).
* :mod:`rapsam.data.synth`: a deterministic generator writing all of those formats.
* :mod:`rapsam.data.formats`: RLE / polygon / panoptic-id codecs.

The inference path does not import this package.
"""

from rapsam.data.datasets import (
    ADE20KSemanticDataset,
    CocoInstancesDataset,
    CocoPanopticDataset,
    DatasetFormatError,
    ImageSample,
    SkippedRecord,
    VideoSample,
    VIPSegDataset,
    YouTubeVISDataset,
)
from rapsam.data.taxonomy import MergedTaxonomy, merge_taxonomies

__all__ = [
    "ADE20KSemanticDataset",
    "CocoInstancesDataset",
    "CocoPanopticDataset",
    "DatasetFormatError",
    "ImageSample",
    "MergedTaxonomy",
    "SkippedRecord",
    "VIPSegDataset",
    "VideoSample",
    "YouTubeVISDataset",
    "merge_taxonomies",
]
