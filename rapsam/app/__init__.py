"""``rapsam serve``: a browser app for click-to-segment, panoptic and video segmentation.

RAP-SAM (Xu et al., "RAP-SAM: Towards Real-Time All-Purpose Segment Anything", arXiv 2401.10228)
serves interactive, panoptic and video segmentation with one model; this package puts the three
behind one gradio page, in the manner of SAM's web demo (the image encoder runs once per image and
every click only runs the prompt decoder).

* :mod:`rapsam.app.sessions`: the per-browser-session logic (prompts, cached embedding, overlays,
  downloads, upload limits), plain Python with no gradio import, so it is unit-tested directly;
* :mod:`rapsam.app.samples`: the sample images / video offered on the page;
* :mod:`rapsam.app.web`: the gradio ``Blocks`` layout and event wiring (imports gradio).

Nothing is imported eagerly: ``import rapsam.app`` does not import gradio or torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Limits", "build_app", "launch"]


def __getattr__(name: str) -> Any:
    if name == "Limits":
        from .sessions import Limits

        return Limits
    if name in ("build_app", "launch"):
        from . import web

        return getattr(web, name)
    raise AttributeError(f"module 'rapsam.app' has no attribute {name!r}")
