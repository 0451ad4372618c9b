"""Prompt templates that turn a class name into sentences for the text encoder.

The official RAP-SAM classifier (``tools/gen_cls.py`` with ``ext/templates/vild.py`` in
xushilin1/RAP-SAM, taken from fc-clip, itself from ViLD, Gu et al. 2021, arXiv 2104.13921) expands
every synonym of every class with the 14 templates below, encodes each sentence and averages the
normalised embeddings over templates.

The strings are copied exactly, including the missing final period of templates 2-5: the encoder
sees them as written, so changing one changes the classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["VILD_TEMPLATES", "check_templates", "expand"]

# fmt: off
VILD_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)
# fmt: on


def check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """Validate prompt templates and return them as a tuple.

    Each template must be a string with exactly one ``{}`` placeholder (where the class name goes)
    and no other format fields.

    Raises:
        ValueError: empty list, a non-string, a duplicate, or a template without exactly one ``{}``.
    """
    if isinstance(templates, str):
        raise ValueError(
            "templates must be a list of strings, not one string: wrap it as [template]"
        )
    out = tuple(templates)
    if not out:
        raise ValueError(
            "templates is empty: give at least one template such as '{}' or 'a photo of a {}.'"
        )
    seen: set[str] = set()
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise ValueError(f"template {i} is a {type(t).__name__}, not a string")
        if t.count("{}") != 1 or t.replace("{}", "").count("{") or t.replace("{}", "").count("}"):
            raise ValueError(
                f"template {i} ({t!r}) must contain exactly one '{{}}' placeholder for the class "
                "name and no other braces"
            )
        if t in seen:
            raise ValueError(f"template {i} ({t!r}) is listed twice: remove the duplicate")
        seen.add(t)
    return out


def expand(synonym: str, templates: Sequence[str] = VILD_TEMPLATES) -> list[str]:
    """All sentences for one synonym, in template order.

    Example:
        >>> expand("cat", VILD_TEMPLATES)[0]
        'a photo of a cat.'
    """
    return [t.replace("{}", synonym) for t in templates]
