"""Image and video input/output for rapsam: everything becomes ``(H, W, 3)`` uint8 RGB.

See :mod:`rapsam.io.image` (files, arrays, PIL images, tensors -> RGB arrays; PNG writing) and
:mod:`rapsam.io.video` (lazy frame sources for videos, folders, cameras and iterables; an atomic
video writer). PyAV is imported only when a video is opened or written.
"""

from rapsam.io.image import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    as_rgb_array,
    list_images,
    natural_sort_key,
    read_image,
    write_png,
)
from rapsam.io.video import (
    FrameSource,
    VideoReadError,
    VideoWriter,
    open_frames,
    write_frames_folder,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "FrameSource",
    "ImageReadError",
    "VideoReadError",
    "VideoWriter",
    "as_rgb_array",
    "list_images",
    "natural_sort_key",
    "open_frames",
    "read_image",
    "write_frames_folder",
    "write_png",
]
