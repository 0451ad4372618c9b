"""Build, save, load and convert the open-vocabulary text classifier (K, P, D).

RAP-SAM (arXiv 2401.10228) scores a query against class ``k`` as the best cosine similarity over
the ``P`` prototypes of that class. The official code only loads a precomputed tensor made by
``tools/gen_cls.py`` (xushilin1/RAP-SAM); :func:`build_classifier` reproduces that tool:

1. every synonym of every class is put into each of the 14 ViLD templates
   (:data:`~rapsam.vocab.templates.VILD_TEMPLATES`) and encoded;
2. each sentence embedding is L2-normalised, the T embeddings of a synonym are averaged, and the
   average is re-normalised, giving one unit prototype per synonym;
3. classes are padded to ``P = max synonym count`` by repeating their first synonym's prototype.

A classifier file is a safetensors file with one tensor ``embeddings`` (K, P, D) float32 and a
metadata header: the encoder name, its provenance, the templates and the full vocabulary (names,
synonyms, thing flags, ids), so a file is self-describing. Official ``.pth`` files (a bare
``torch.save``-d tensor (K, P, 768), unit rows) convert with :func:`convert_official`, which attaches
the class list and checks it against the file's padding pattern.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .encoders import OFFICIAL_CLIP_MODEL, OFFICIAL_CLIP_PRETRAINED, TextEncoder
from .templates import VILD_TEMPLATES, check_templates, expand
from .vocabulary import BUILTIN_VOCABULARIES, Vocabulary

__all__ = [
    "ClassifierFile",
    "build_classifier",
    "build_classifier_file",
    "check_classifier",
    "convert_official",
    "load_classifier",
    "load_official",
]

FORMAT = "rapsam.text_classifier"
FORMAT_VERSION = "1"
#: Rows whose L2 norm differs from 1 by more than this are rejected.
UNIT_TOL = 1e-3
#: Encoder name recorded for converted official files.
OFFICIAL_ENCODER_NAME = f"open_clip:{OFFICIAL_CLIP_MODEL}:{OFFICIAL_CLIP_PRETRAINED}"


def build_classifier(
    vocab: Vocabulary,
    encoder: TextEncoder,
    templates: Sequence[str] = VILD_TEMPLATES,
    chunk_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Encode a vocabulary into the classifier tensor, as the official ``gen_cls.py`` does.

    Args:
        vocab: the classes (K of them, at most P synonyms each).
        encoder: any :class:`~rapsam.vocab.encoders.TextEncoder`.
        templates: prompt templates with one ``{}`` each (default: the 14 ViLD templates).
        chunk_size: sentences handed to ``encoder.encode`` per call.
        progress: optional ``progress(done, total)`` callback, in sentences.

    Returns:
        (K, P, D) float32, every row unit-norm; row ``p >= len(vocab.synonyms[k])`` of class ``k``
        repeats row 0.

    Raises:
        ValueError: bad templates, an encoder output of the wrong shape / non-finite, or a
            sentence that encodes to the zero vector.
    """
    if not isinstance(vocab, Vocabulary):
        raise ValueError(
            f"vocab must be a Vocabulary (see Vocabulary.load), got {type(vocab).__name__}"
        )
    templates = check_templates(templates)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dim = int(encoder.dim)
    sentences = [s for syns in vocab.synonyms for syn in syns for s in expand(syn, templates)]
    total = len(sentences)
    parts = []
    for i in range(0, total, chunk_size):
        chunk = sentences[i : i + chunk_size]
        out = encoder.encode(chunk)
        if not isinstance(out, torch.Tensor) or out.shape != (len(chunk), dim):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"encoder '{encoder.name}' returned {got} for {len(chunk)} sentences; expected a "
                f"tensor ({len(chunk)}, {dim}) (its .dim)"
            )
        parts.append(out.detach().float().cpu())
        if progress is not None:
            progress(min(i + chunk_size, total), total)
    feats = torch.cat(parts)  # (S*T, D)
    if not torch.isfinite(feats).all():
        bad = int((~torch.isfinite(feats)).any(dim=1).nonzero()[0])
        raise ValueError(
            f"encoder '{encoder.name}' returned non-finite values for {sentences[bad]!r}"
        )
    num_syn, num_tpl = sum(vocab.synonym_counts), len(templates)
    feats = feats.reshape(num_syn, num_tpl, dim)  # (S, T, D)
    norms = feats.norm(dim=-1, keepdim=True)  # (S, T, 1)
    if (norms == 0).any():
        s, t = (int(x) for x in (norms[..., 0] == 0).nonzero()[0])
        raise ValueError(
            f"encoder '{encoder.name}' encodes {sentences[s * num_tpl + t]!r} to the zero vector"
        )
    protos = (feats / norms).mean(dim=1)  # (S, D)
    pnorm = protos.norm(dim=-1, keepdim=True)  # (S, 1)
    if (pnorm < 1e-6).any():
        s = int((pnorm[:, 0] < 1e-6).nonzero()[0])
        raise ValueError(f"the template average of synonym {s} is ~0: its sentences cancel out")
    protos = protos / pnorm
    num_classes, num_protos = len(vocab), vocab.max_synonyms
    out = torch.empty(num_classes, num_protos, dim)  # (K, P, D)
    pos = 0
    for k, n in enumerate(vocab.synonym_counts):
        out[k, :n] = protos[pos : pos + n]
        out[k, n:] = protos[pos]
        pos += n
    return out


@dataclass
class ClassifierFile:
    """A classifier tensor with everything needed to use it again.

    Attributes:
        embeddings: (K, P, D) float32, unit rows.
        vocabulary: the K classes, in row order.
        encoder: encoder name (e.g. ``'open_clip:convnext_large_d_320:open_clip_pytorch_model.bin'``).
        templates: the prompt templates used.
        info: JSON-able provenance (encoder weights hash, converted-from file, ...).
    """

    embeddings: torch.Tensor
    vocabulary: Vocabulary
    encoder: str
    templates: tuple[str, ...] = VILD_TEMPLATES
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.embeddings = check_classifier(self.embeddings, self.vocabulary)
        self.templates = check_templates(self.templates)
        if not isinstance(self.encoder, str) or not self.encoder:
            raise ValueError("encoder must be a non-empty name")

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[-1])

    def metadata(self) -> dict[str, str]:
        """The safetensors string header."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "encoder": self.encoder,
            "dim": str(self.dim),
            "num_classes": str(len(self.vocabulary)),
            "num_prototypes": str(self.embeddings.shape[1]),
            "templates": json.dumps(list(self.templates), ensure_ascii=False),
            "vocabulary": json.dumps(self.vocabulary.to_dict(), ensure_ascii=False),
            "info": json.dumps(self.info, ensure_ascii=False),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``path`` (``.safetensors``)."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            raise ValueError(f"classifier files are .safetensors; got '{path.name}'")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"embeddings": self.embeddings.contiguous()}, str(path), metadata=self.metadata())

    @classmethod
    def load(cls, path: str | os.PathLike[str], expected_dim: int | None = None) -> ClassifierFile:
        """Read and validate a classifier file (see :func:`load_classifier`)."""
        path = Path(path)
        if path.suffix in (".pth", ".pt"):
            raise ValueError(
                f"{path} looks like an official classifier (.pth); convert it first: "
                f"rapsam vocab convert {path} --vocab NAME --out {path.with_suffix('.safetensors').name}"
            )
        if not path.is_file():
            raise ValueError(f"classifier file not found: {path}")
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                keys = list(f.keys())
                emb = f.get_tensor("embeddings") if "embeddings" in keys else None
        except Exception as e:  # noqa: BLE001 - corrupt / foreign files
            raise ValueError(f"{path} is not a readable safetensors file ({e})") from None
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"{path} is not a rapsam classifier file (no '{FORMAT}' header); build one with "
                "`rapsam vocab build` or convert an official .pth with `rapsam vocab convert`"
            )
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: classifier format version {meta.get('format_version')!r} is not supported "
                f"(this rapsam reads {FORMAT_VERSION!r}); rebuild the file"
            )
        if emb is None:
            raise ValueError(f"{path}: no 'embeddings' tensor (found {keys})")
        try:
            vocab = Vocabulary.from_dict(json.loads(meta["vocabulary"]), where=f"{path} vocabulary")
            templates = tuple(json.loads(meta["templates"]))
            info = json.loads(meta.get("info", "{}"))
            dim = int(meta["dim"])
        except (KeyError, json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"{path}: damaged metadata header ({e!r}); rebuild the file") from None
        if emb.dim() == 3 and emb.shape[-1] != dim:
            raise ValueError(f"{path}: header says dim {dim} but the tensor has {emb.shape[-1]}")
        try:
            out = cls(emb, vocab, meta.get("encoder", ""), templates, info)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        if expected_dim is not None and out.dim != expected_dim:
            raise ValueError(
                f"{path}: classifier embeddings have size {out.dim} (encoder '{out.encoder}') but the "
                f"model expects {expected_dim}; build the classifier with the text encoder the model "
                "was trained with"
            )
        return out


def check_classifier(
    embeddings: torch.Tensor,
    vocab: Vocabulary | None = None,
    expected_dim: int | None = None,
    what: str = "classifier",
) -> torch.Tensor:
    """Validate a (K, P, D) classifier and return it as contiguous float32.

    Raises:
        ValueError: not a 3-D tensor, K different from ``len(vocab)``, P smaller than the largest
            synonym count, D different from ``expected_dim``, non-finite values or non-unit rows.
    """
    if not isinstance(embeddings, torch.Tensor):
        raise ValueError(
            f"{what} must be a torch.Tensor (K, P, D), got {type(embeddings).__name__}"
        )
    if embeddings.dim() != 3:
        raise ValueError(
            f"{what} has shape {tuple(embeddings.shape)}; expected (K classes, P prototypes, D); "
            "a (K, D) table can be given as emb[:, None, :]"
        )
    emb = embeddings.detach().float().contiguous()
    k, p, d = emb.shape
    if vocab is not None:
        if k != len(vocab):
            raise ValueError(
                f"{what} has {k} classes but vocabulary '{vocab.name}' has {len(vocab)}"
            )
        if p < vocab.max_synonyms:
            raise ValueError(
                f"{what} has {p} prototypes per class but vocabulary '{vocab.name}' has a class with "
                f"{vocab.max_synonyms} synonyms"
            )
    if expected_dim is not None and d != expected_dim:
        raise ValueError(f"{what} has embedding size {d} but the model expects {expected_dim}")
    if k == 0 or p == 0 or d == 0:
        raise ValueError(f"{what} is empty: shape {tuple(emb.shape)}")
    if not torch.isfinite(emb).all():
        raise ValueError(f"{what} contains NaN or inf")
    err = (emb.norm(dim=-1) - 1).abs()  # (K, P)
    if (err > UNIT_TOL).any():
        c, r = (int(x) for x in (err > UNIT_TOL).nonzero()[0])
        raise ValueError(
            f"{what} row ({c}, {r}) has norm {float(emb[c, r].norm()):.4f}; every row must be unit "
            "norm (L2-normalise the embeddings)"
        )
    return emb


def build_classifier_file(
    vocab: Vocabulary,
    encoder: TextEncoder,
    templates: Sequence[str] = VILD_TEMPLATES,
    progress: Callable[[int, int], None] | None = None,
) -> ClassifierFile:
    """:func:`build_classifier` plus the metadata, ready to ``.save()``."""
    emb = build_classifier(vocab, encoder, templates, progress=progress)
    info_fn = getattr(encoder, "info", None)
    info = {
        "built_by": "rapsam.vocab.build_classifier",
        "encoder_info": info_fn() if info_fn else {},
    }
    return ClassifierFile(emb, vocab, encoder.name, tuple(templates), info)


def load_classifier(
    path: str | os.PathLike[str], expected_dim: int | None = None
) -> tuple[torch.Tensor, Vocabulary, dict[str, Any]]:
    """Read a classifier file.

    Args:
        path: a ``.safetensors`` file written by :meth:`ClassifierFile.save`.
        expected_dim: the model's embedding size D; a different size is an error.

    Returns:
        (embeddings (K, P, D) float32 unit rows, vocabulary, meta) where meta has ``encoder``,
        ``dim``, ``templates`` and ``info``.

    Raises:
        ValueError: missing / foreign / damaged file, wrong shape, non-unit rows, size mismatch.
    """
    f = ClassifierFile.load(path, expected_dim=expected_dim)
    meta = {"encoder": f.encoder, "dim": f.dim, "templates": list(f.templates), "info": f.info}
    return f.embeddings, f.vocabulary, meta


def load_official(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read an official classifier ``.pth`` (a ``torch.save``-d tensor (K, P, D), unit rows).

    Raises:
        ValueError: missing file, not a tensor, not 3-D, non-unit rows.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"official classifier file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"cannot read {path} as a torch file ({e})") from None
    if not isinstance(obj, torch.Tensor):
        raise ValueError(
            f"{path} holds a {type(obj).__name__}, not a tensor; official classifier files are a bare "
            "tensor (K, P, D) written by tools/gen_cls.py"
        )
    return check_classifier(obj, what=str(path))


def convert_official(
    pth_path: str | os.PathLike[str],
    vocab: str | os.PathLike[str] | Vocabulary,
    check_padding: bool = True,
    encoder: str = OFFICIAL_ENCODER_NAME,
) -> ClassifierFile:
    """Attach a class list to an official classifier ``.pth``.

    Args:
        pth_path: the official file, e.g. ``convnext_large_d_320_CocoPanopticOVDataset.pth``.
        vocab: the vocabulary it was built from (builtin name, file or :class:`Vocabulary`):
            ``coco_panoptic`` for ``..._CocoPanopticOVDataset.pth``, ``ytvis_2019`` for
            ``..._YouTubeVISDataset_2019.pth``, ``coco_ytvis2019_merged`` for
            ``..._Concat_CocoPanopticOVDataset_YouTubeVISDataset_2019.pth``.
        check_padding: verify the file against the vocabulary: P equals the largest synonym count,
            and class ``k``'s rows ``>= len(synonyms[k])`` repeat row 0 while its other rows differ
            from row 0 (the fingerprint ``gen_cls.py`` leaves).
        encoder: encoder name recorded in the result.

    Raises:
        ValueError: the file is unreadable or does not match the vocabulary.
    """
    emb = load_official(pth_path)
    v = Vocabulary.load(vocab)
    k = emb.shape[0]
    if k != len(v):
        fits = [n for n in BUILTIN_VOCABULARIES if len(Vocabulary.builtin(n)) == k]
        raise ValueError(
            f"{pth_path} has {k} classes but vocabulary '{v.name}' has {len(v)}"
            + (f"; builtin vocabularies with {k} classes: {fits}" if fits else "")
        )
    if check_padding:
        _check_padding(emb, v, str(pth_path))
    sha = hashlib.sha256(Path(pth_path).read_bytes()).hexdigest()
    info = {
        "converted_from": Path(pth_path).name,
        "sha256": sha,
        "built_by": "official tools/gen_cls.py",
    }
    return ClassifierFile(emb, v, encoder, VILD_TEMPLATES, info)


def _check_padding(emb: torch.Tensor, vocab: Vocabulary, what: str) -> None:
    p = emb.shape[1]
    if p != vocab.max_synonyms:
        raise ValueError(
            f"{what} has {p} prototypes per class but vocabulary '{vocab.name}' pads to "
            f"{vocab.max_synonyms}; was it built from another class list? (check_padding=False skips this)"
        )
    for c, n in enumerate(vocab.synonym_counts):
        same = [bool(torch.equal(emb[c, j], emb[c, 0])) for j in range(p)]
        if not all(same[n:]) or any(same[1:n]):
            real = 1 + sum(1 for j in range(1, p) if not same[j])
            raise ValueError(
                f"{what}: class {c} ('{vocab.names[c]}') has {real} distinct prototypes but vocabulary "
                f"'{vocab.name}' lists {n} synonyms; was the file built from another class list? "
                "(check_padding=False skips this)"
            )
