"""Data sources of a training run: the dataset readers, the training vocabulary and the item stream."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..config import TrainConfig
from .data import Aug, PromptSampling, TrainItem, augment, choose_source, object_item, prompt_item, sample_rng


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", " ")


def build_vocabulary(cfg: TrainConfig) -> tuple[list[str], list[bool], torch.Tensor, str | None]:
    """Training classes and their text embeddings.

    Returns:
        names, thing flags, embeddings (K, P, D), and the encoder name to record in the model (None
        when the embeddings come from a classifier file or a test-only encoder).
    """
    from ..vocab import Vocabulary, build_classifier, load_classifier, make_encoder
    from ..vocab.encoders import HashingEncoder

    if cfg.vocabulary == "dataset":
        vocab = dataset_vocabulary(cfg)
    else:
        vocab = Vocabulary.load(cfg.vocabulary)
    if cfg.classifier:
        emb, file_vocab, _ = load_classifier(cfg.classifier, expected_dim=cfg.model.decoder.embed_dim)
        if len(file_vocab) != len(vocab):
            raise ValueError(f"classifier {cfg.classifier} has {len(file_vocab)} classes but the vocabulary has {len(vocab)}")
        return list(vocab.names), list(vocab.is_thing), emb, None
    if cfg.text_encoder.startswith("hashing"):
        dim = int(cfg.text_encoder.split(":")[1]) if ":" in cfg.text_encoder else cfg.model.decoder.embed_dim
        encoder, recorded = HashingEncoder(dim), None
    else:
        encoder, recorded = make_encoder(cfg.text_encoder), cfg.text_encoder
    emb = build_classifier(vocab, encoder)
    if emb.shape[-1] != cfg.model.decoder.embed_dim:
        raise ValueError(
            f"text encoder '{cfg.text_encoder}' gives {emb.shape[-1]}-d embeddings but model.decoder.embed_dim is "
            f"{cfg.model.decoder.embed_dim}; set --set model.decoder.embed_dim={emb.shape[-1]}"
        )
    return list(vocab.names), list(vocab.is_thing), emb, recorded


def dataset_vocabulary(cfg: TrainConfig):
    """The class names of the training annotation files, merged by name (things first)."""
    from ..data.taxonomy import merge_taxonomies
    from ..vocab import Vocabulary

    parts = []
    if cfg.data.panoptic_ann:
        ds = _open_panoptic(cfg, "")
        parts.append((list(ds.classes), [bool(t) for t in ds.thing_flags]))
    if cfg.data.video_ann:
        ds = _open_video(cfg, "")
        parts.append((list(ds.classes), [True] * len(ds.classes)))
    if not parts:
        raise ValueError("no training data: set data.panoptic_ann / data.video_ann (see `rapsam train --help`)")
    merged = merge_taxonomies(parts)
    return Vocabulary.from_names(list(merged.names), list(merged.is_thing), name="dataset")


def _open_panoptic(cfg: TrainConfig, prefix: str):
    from ..data.datasets import CocoPanopticDataset

    d = cfg.data
    ann, img, pan = (getattr(d, f"{prefix}panoptic_{k}") for k in ("ann", "images", "masks"))
    if not (ann and img and pan):
        raise ValueError(f"COCO panoptic data needs data.{prefix}panoptic_ann, _images and _masks")
    return CocoPanopticDataset(ann, img, pan)


def _open_video(cfg: TrainConfig, prefix: str):
    from ..data.datasets import YouTubeVISDataset

    d = cfg.data
    ann, vdir = getattr(d, f"{prefix}video_ann"), getattr(d, f"{prefix}video_dir")
    if not (ann and vdir):
        raise ValueError(f"YouTube-VIS data needs data.{prefix}video_ann and data.{prefix}video_dir")
    return YouTubeVISDataset(ann, vdir)


def label_map(dataset_classes: list[str], vocab_names: list[str], synonyms: list[list[str]] | None = None) -> np.ndarray:
    """Dataset class index -> vocabulary index (by name or synonym); -1 for classes not in the vocabulary."""
    lookup: dict[str, int] = {}
    for i, n in enumerate(vocab_names):
        lookup.setdefault(_norm(n), i)
        for s in (synonyms[i] if synonyms else []):
            lookup.setdefault(_norm(s), i)
    return np.array([lookup.get(_norm(c), -1) for c in dataset_classes], dtype=np.int64)


class TrainStream(Dataset):
    """Map-style dataset whose index is ``(step_key, global_item_index)``; see ``rapsam.training.data``."""

    def __init__(self, cfg: TrainConfig, vocab_names: list[str]) -> None:
        self.cfg = cfg
        self.vocab_names = vocab_names
        d = cfg.data
        self.mix = {"panoptic": d.mix[0], "video": d.mix[1], "prompt": d.mix[2]}
        if not d.panoptic_ann:
            self.mix["panoptic"] = self.mix["prompt"] = 0.0
        if not d.video_ann:
            self.mix["video"] = 0.0
        if sum(self.mix.values()) <= 0:
            raise ValueError("data.mix gives no source with data: set data paths or non-zero mix weights")
        self.prompt_cfg = PromptSampling(d.num_prompts, d.max_clicks, d.box_prob, d.extra_pos_prob, d.neg_prob)

    @cached_property
    def panoptic(self):
        ds = _open_panoptic(self.cfg, "")
        if len(ds) == 0:
            raise ValueError(f"{self.cfg.data.panoptic_ann} has no usable images")
        self.pan_map = label_map(list(ds.classes), self.vocab_names)
        return ds

    @cached_property
    def video(self):
        ds = _open_video(self.cfg, "")
        if len(ds) == 0:
            raise ValueError(f"{self.cfg.data.video_ann} has no usable videos")
        self.vid_map = label_map(list(ds.classes), self.vocab_names)
        return ds

    def __len__(self) -> int:  # the stream is indexed by keys, not positions
        return 2**62

    def __getitem__(self, key: tuple[int, int]) -> TrainItem:
        step_key, g = key
        source = choose_source(self.cfg.seed, step_key, self.mix)
        for attempt in range(20):
            rng = sample_rng(self.cfg.seed, step_key, g, attempt)
            item = self._make(source, rng)
            if item is not None:
                return item
        raise RuntimeError(f"could not draw a usable '{source}' sample in 20 tries (are the annotations empty?)")

    def _make(self, source: str, rng: np.random.Generator) -> TrainItem | None:
        d = self.cfg.data
        if source == "video":
            ds = self.video
            i = int(rng.integers(len(ds)))
            n = ds.num_frames(i)
            gap = min(d.clip_interval, max(n - 1, 0))
            f0 = int(rng.integers(0, max(n - gap, 1)))
            s = ds.load(i, frames=[f0, f0 + gap] if gap else [f0, f0])
            frames = np.stack(s.frames)  # (T, H, W, 3)
            labels = self.vid_map[s.labels]
            keep = labels >= 0
            imgs, masks = augment(rng, frames, s.masks[keep], Aug(d.crop, d.ratio_range))
            return object_item("video", imgs, masks, labels[keep])
        ds = self.panoptic
        s = ds[int(rng.integers(len(ds)))]
        if source == "prompt":
            masks = s.masks[~s.iscrowd][:, None]  # class-agnostic: all segments, (N, 1, H, W)
            if masks.shape[0] == 0:
                return None
            imgs, m = augment(rng, s.image[None], masks, Aug(d.crop, d.prompt_ratio_range))
            return prompt_item(rng, imgs, m, self.prompt_cfg, d.min_mask_area)
        labels = self.pan_map[s.labels]
        keep = (labels >= 0) & ~s.iscrowd
        frames = np.stack([s.image, s.image])
        masks = np.repeat(s.masks[keep][:, None], 2, axis=1)  # (N, 2, H, W): the same segment in both copies
        imgs, m = augment(rng, frames, masks, Aug(d.crop, d.ratio_range), independent_crops=True)
        return object_item("panoptic", imgs, m, labels[keep])

    def loader(self, start: int, stop: int, rank: int, world: int, collate_fn) -> DataLoader:
        """Batches for iterations ``start .. stop-1`` of this rank (grad-accumulation steps included)."""
        b, accum = self.cfg.batch_size, self.cfg.grad_accum

        def keys():
            for step_key in range(start * accum, stop * accum):
                base = step_key * world * b + rank * b
                yield [(step_key, base + s) for s in range(b)]

        workers = self.cfg.data.workers
        return DataLoader(self, batch_sampler=list(keys()), num_workers=workers, collate_fn=collate_fn,
                          persistent_workers=False, prefetch_factor=2 if workers else None)
