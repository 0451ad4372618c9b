"""Open-vocabulary classification: class vocabularies, text encoders and the (K, P, D) classifier.

RAP-SAM (arXiv 2401.10228) classifies each query by cosine similarity to text embeddings of class
names. The official code (xushilin1/RAP-SAM) only loads precomputed classifier files made by
``tools/gen_cls.py``; this package builds them (:func:`build_classifier`), ships the class lists
as data (:class:`Vocabulary`, ``rapsam/vocab/data/*.json``), saves them with their metadata
(:class:`ClassifierFile`) and converts the official ``.pth`` files (:func:`convert_official`).

Optional dependencies are imported only when an encoder is built: ``open_clip_torch`` for
:class:`OpenClipTextEncoder`, ``sentence-transformers`` for :class:`SentenceTransformerEncoder`.
"""

from .classifier import (
    ClassifierFile,
    build_classifier,
    build_classifier_file,
    check_classifier,
    convert_official,
    load_classifier,
    load_official,
)
from .encoders import (
    ENCODERS,
    HashingEncoder,
    OpenClipTextEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    make_encoder,
)
from .templates import VILD_TEMPLATES, check_templates, expand
from .vocabulary import BUILTIN_VOCABULARIES, Vocabulary, merge_vocabularies, split_synonyms

__all__ = [
    "BUILTIN_VOCABULARIES",
    "ENCODERS",
    "VILD_TEMPLATES",
    "ClassifierFile",
    "HashingEncoder",
    "OpenClipTextEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "Vocabulary",
    "build_classifier",
    "build_classifier_file",
    "check_classifier",
    "check_templates",
    "convert_official",
    "expand",
    "load_classifier",
    "load_official",
    "make_encoder",
    "merge_vocabularies",
    "split_synonyms",
]
