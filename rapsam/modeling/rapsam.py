"""RapSam: the whole network (backbone -> neck -> shared decoder -> two adapters).

RAP-SAM / RMP-SAM, Xu et al., arXiv 2401.10228 (figure 2). ``RapSam`` composes injected modules (SAM's
``Sam(image_encoder, prompt_encoder, mask_decoder)`` style) and serves training and inference alike.

Object queries (100 learned kernels, for panoptic / instance / video) and prompt queries (one per
click/box prompt, for interactive segmentation) go through the same three decoder stages. They can be
decoded in **one pass**: the self-attention isolation (object queries see each other, each prompt
query sees only itself) is computed block by block, so the results are bit-identical to two separate
passes (the official code only ever runs one
kind per pass). Object queries then go through the object adapter, prompt queries through the prompt
adapter.

Video clips: a clip of T frames is encoded frame by frame and F is stacked along height
(B, C, T*H, W), so each query predicts a tube mask; mask outputs are then (B, Q, T, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from .adapters import ObjectAdapter, PromptAdapter
from .backbones.base import Backbone
from .classifier import TextClassifier
from .decoder import Decoder, DecoderOutput
from .factored import FactoredFeatures
from .neck import RapSamNeck
from .prompt_encoder import PromptEncoder

if TYPE_CHECKING:  # pragma: no cover
    from .fuse import FusedEncoder


@dataclass
class Prompts:
    """A batch of prompts in the model's input frame (pixels of the resized, unpadded image).

    Attributes:
        points: (B, P, n, 2) clicks (x, y) or None.
        labels: (B, P, n) long: 1 positive, 0 negative, -1 padding (required with points).
        boxes: (B, P, 4) xyxy boxes, NaN rows for prompts without a box, or None.
        image_sizes: (B, 2) (h, w) of the unpadded image; None means the padded input size.
    """

    points: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    image_sizes: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return (self.points if self.points is not None else self.boxes).shape[0]

    @property
    def num_prompts(self) -> int:
        return (self.points if self.points is not None else self.boxes).shape[1]

    def to(self, device: torch.device | str) -> Prompts:
        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Prompts(mv(self.points), mv(self.labels), mv(self.boxes), mv(self.image_sizes))


@dataclass
class RapSamOutput:
    """Everything one forward pass produces.

    Attributes:
        object_outputs: 3 stage outputs + the object adapter's (the one used for prediction), or None.
        prompt_outputs: 3 stage outputs + the prompt adapter's, or None.
        object_embed: (B, Q, C) object kernels after the adapter (used for video association).
        prompt_embed: (B, P, C) prompt kernels after the adapter.
        features: F, (B, C, H/4, W/4) per frame; for clips (B*T, C, H/4, W/4). A ``FactoredFeatures``
            when an inference encoder produced it (``factored.as_tensor`` gives the tensor).
    """

    object_outputs: list[DecoderOutput] | None = None
    prompt_outputs: list[DecoderOutput] | None = None
    object_embed: torch.Tensor | None = None
    prompt_embed: torch.Tensor | None = None
    features: torch.Tensor | FactoredFeatures | None = field(default=None, repr=False)


class RapSam(nn.Module):
    """The RAP-SAM network.

    Args:
        backbone: a ``Backbone`` (exposes ``channels`` / ``strides``).
        neck: the neck producing F at stride 4.
        prompt_encoder: turns clicks/boxes into prompt queries.
        decoder: object queries + shared decoder stages.
        object_adapter, prompt_adapter: the asymmetric adapters.
        classifier: the open-vocabulary text classifier.
        pixel_mean, pixel_std: RGB normalisation (0-255 scale).
        size_divisor: inputs must be padded to a multiple of this.
    """

    def __init__(
        self,
        backbone: Backbone,
        neck: RapSamNeck,
        prompt_encoder: PromptEncoder,
        decoder: Decoder,
        object_adapter: ObjectAdapter,
        prompt_adapter: PromptAdapter,
        classifier: TextClassifier,
        pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53),
        pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375),
        size_divisor: int = 32,
        prompt_prior: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.prompt_prior = prompt_prior
        self.backbone = backbone
        self.neck = neck
        self.prompt_encoder = prompt_encoder
        self.decoder = decoder
        self.object_adapter = object_adapter
        self.prompt_adapter = prompt_adapter
        self.classifier = classifier
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, 3, 1, 1), persistent=False)
        self.size_divisor = size_divisor
        # Vocabulary metadata travelling with the classifier table (set by set_vocabulary).
        self.class_names: list[str] = []
        self.thing_flags: list[bool] = []
        # Name of the text encoder (``rapsam.vocab.make_encoder``) class names are embedded with.
        self.text_encoder: str | None = None
        # Filled by the builder: the ModelConfig this network was built from.
        self.config = None
        # Set by ``rapsam.modeling.fuse.optimize_for_inference``: BatchNorm folded, no training.
        self.inference_only = False

    def train(self, mode: bool = True) -> RapSam:
        if mode and getattr(self, "inference_only", False):
            raise RuntimeError(
                "this RapSam was optimised for inference (BatchNorm folded into the convolutions) and cannot "
                "be trained: train the original model and call optimize_for_inference(model) again"
            )
        return super().train(mode)

    # ------------------------------------------------------------------ vocabulary
    def set_vocabulary(
        self, embeddings: torch.Tensor, names: list[str] | None = None, is_thing: list[bool] | None = None
    ) -> None:
        """Swap the class vocabulary at run time (no reload): embeddings (K, P, D) unit rows."""
        k = embeddings.shape[0] if isinstance(embeddings, torch.Tensor) and embeddings.dim() >= 2 else None
        if names is not None and k is not None and len(names) != k:
            raise ValueError(f"{len(names)} class names given for a classifier with {k} classes")
        if is_thing is not None and k is not None and len(is_thing) != k:
            raise ValueError(f"{len(is_thing)} thing flags given for a classifier with {k} classes")
        self.classifier.set_embeddings(embeddings)
        k = self.classifier.num_classes
        self.class_names = list(names) if names is not None else [f"class_{i}" for i in range(k)]
        self.thing_flags = [bool(t) for t in is_thing] if is_thing is not None else [True] * k

    @property
    def num_classes(self) -> int:
        return self.classifier.num_classes

    # ------------------------------------------------------------------ encoder
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8/float RGB (B, 3, H, W) in 0-255 -> normalised float (no resizing, no padding)."""
        return (images.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std

    def _check_images(self, images: torch.Tensor) -> None:
        check_images(images, self.size_divisor)

    def extract_features(self, images: torch.Tensor, encoder: FusedEncoder | None = None) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> F (B, C, H/4, W/4).

        Args:
            images: normalised, padded images.
            encoder: a ``rapsam.modeling.fuse.FusedEncoder`` of this model (BatchNorm folded,
                channels-last) to run instead of ``backbone`` + ``neck``; the predictors pass one.
        """
        self._check_images(images)
        if encoder is not None:
            if encoder.model is not self:
                raise ValueError("this FusedEncoder mirrors another model: build it with FusedEncoder(model)")
            return encoder(images)
        return self.neck(self.backbone(images))

    # ------------------------------------------------------------------ decoder
    def decode(
        self,
        features: torch.Tensor | FactoredFeatures,
        prompts: Prompts | None = None,
        with_objects: bool = True,
        num_frames: int = 1,
        prompt_queries: torch.Tensor | None = None,
        prompt_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> RapSamOutput:
        """Decode object and/or prompt queries over F.

        Args:
            features: F (B*T, C, h, w), a tensor or ``FactoredFeatures``.
            prompts: prompts for the batch (B = features batch / T), or None.
            with_objects: include the 100 object queries.
            num_frames: T, frames per clip (features are stacked along height inside).
            prompt_queries: (B, P, C) precomputed prompt queries (e.g. a tracked object's kernel),
                used instead of / in addition to ``prompts`` (appended after them).
            prompt_kv: ``prompt_adapter.project_features(F)`` for these features (inference: computed
                once per image instead of once per call; see ``InteractivePredictor``).
        """
        if num_frames < 1 or features.shape[0] % num_frames:
            raise ValueError(f"batch of {features.shape[0]} frame features is not divisible into clips of {num_frames}")
        bt, c, h, w = features.shape
        b = bt // num_frames
        feats = features
        if num_frames > 1 and isinstance(features, FactoredFeatures):
            feats = features.stack_frames(b, num_frames)  # (B, C, T*h, w), factored
        elif num_frames > 1:
            feats = features.unflatten(0, (b, num_frames)).transpose(1, 2).flatten(2, 3)  # (B, C, T*h, w)
        queries = []
        n_obj = 0
        if with_objects:
            n_obj = self.decoder.num_queries
            queries.append(self.decoder.query_embed.weight[None].expand(b, -1, -1))
        n_prompt = 0
        if prompts is not None:
            if prompts.batch_size != b:
                raise ValueError(f"prompts are for {prompts.batch_size} images but the batch has {b}")
            sizes = prompts.image_sizes
            if sizes is None:
                sizes = torch.tensor([[h * 4, w * 4]], device=features.device).expand(b, 2)
            q = self.prompt_encoder(prompts.points, prompts.labels, prompts.boxes, sizes.to(features.device), feats)
            queries.append(q)
            n_prompt += q.shape[1]
        if prompt_queries is not None:
            queries.append(prompt_queries)
            n_prompt += prompt_queries.shape[1]
        if not queries:
            raise ValueError("nothing to decode: enable object queries or give prompts")
        kernels = torch.cat(queries, 1) if len(queries) > 1 else queries[0]  # (B, N, C)
        use_cls = self.classifier.is_set
        hook = None
        phi = None
        if self.prompt_prior is not None and n_prompt:
            pts = lbl = bxs = None
            if prompts is not None:
                pts, lbl, bxs = prompts.points, prompts.labels, prompts.boxes
            n_user = n_prompt - (prompt_queries.shape[1] if prompt_queries is not None else 0)
            phi = torch.zeros(b, n_prompt, len(self.prompt_prior.sigmas), h, w, device=kernels.device)
            if n_user:
                phi[:, :n_user] = self.prompt_prior.maps(pts, lbl, bxs, b, n_user, h, w, kernels.device)
            if num_frames > 1:
                phi = phi.repeat(1, 1, 1, num_frames, 1)

            def hook(i: int, k: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
                extra = self.prompt_prior.bias(i, k[:, n_obj:], phi)
                if not n_obj:  # prompts only (every click of the interactive predictor): no concatenation
                    return m + extra
                return torch.cat([m[:, :n_obj], m[:, n_obj:] + extra], 1)

        stages, masks, kernels = self.decoder(feats, kernels, self.classifier if use_cls else None, n_obj, hook)

        def unstack(m: torch.Tensor) -> torch.Tensor:
            return m.unflatten(2, (num_frames, h)) if num_frames > 1 else m  # (B, Q, T, h, w)

        out = RapSamOutput(features=features)
        if n_obj:
            sl = slice(0, n_obj)
            obj = [_slice_output(s, sl, unstack) for s in stages]
            cls, m, k = self.object_adapter(feats, kernels[:, sl], masks[:, sl], self.classifier if use_cls else None)
            obj.append(DecoderOutput(cls, unstack(m), obj[-1].iou))
            out.object_outputs, out.object_embed = obj, k
        if n_prompt:
            sl = slice(n_obj, n_obj + n_prompt)
            pr = [_slice_output(s, sl, unstack) for s in stages]
            m, iou, k = self.prompt_adapter(feats, kernels[:, sl], prompt_kv)
            if phi is not None:
                m = m + self.prompt_prior.bias(len(self.prompt_prior.weights) - 1, k, phi)
            pr.append(DecoderOutput(pr[-1].cls_logits, unstack(m), iou))
            out.prompt_outputs, out.prompt_embed = pr, k
        return out

    def forward(
        self,
        images: torch.Tensor,
        prompts: Prompts | None = None,
        with_objects: bool = True,
        num_frames: int = 1,
    ) -> RapSamOutput:
        """Normalised images (B*T, 3, H, W) (+ prompts) -> ``RapSamOutput``."""
        return self.decode(self.extract_features(images), prompts, with_objects, num_frames)


def check_images(images: torch.Tensor, size_divisor: int) -> None:
    """Validate a model input batch: normalised float (B, 3, H, W), H and W multiples of ``size_divisor``.

    Raises:
        ValueError: naming what is wrong and the fix.
    """
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor (B, 3, H, W), got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must have shape (B, 3, H, W) (normalised RGB), got {tuple(images.shape)}; "
            "use a predictor or model.preprocess() for HWC uint8 images"
        )
    if not images.is_floating_point():
        raise ValueError(
            f"images must be a normalised float tensor, got dtype {images.dtype}; call model.preprocess(images) first"
        )
    h, w = images.shape[-2:]
    d = size_divisor
    if h % d or w % d or h == 0 or w == 0:
        raise ValueError(
            f"image size {h}x{w} is not a multiple of {d}: pad the batch (bottom/right) to a multiple "
            f"of {d} — the predictors do this for you"
        )


def _slice_output(o: DecoderOutput, sl: slice, unstack) -> DecoderOutput:
    cls = o.cls_logits[:, sl] if o.cls_logits is not None else None
    return DecoderOutput(cls, unstack(o.mask_logits[:, sl]), o.iou[:, sl])
