"""Sample images and video offered by ``rapsam serve``.

The page offers a few images (and one short video) to try the model on without an upload. They come
from, in order: a folder given with ``rapsam serve --samples DIR``; ``rapsam/assets/samples/`` when
the installation ships one; otherwise scenes drawn by the synthetic generator
(:mod:`rapsam.data.synth`, the shapes-on-textures world the bundled demo model was trained on),
written once into the server's work folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Image suffixes listed as samples.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: Video suffixes listed as samples.
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi")


@dataclass
class Samples:
    """Sample files: ``images`` (paths) and at most one ``video`` (path or None)."""

    images: list[Path] = field(default_factory=list)
    video: Path | None = None
    source: str = ""


def bundled_samples_dir() -> Path:
    """``rapsam/assets/samples`` (may not exist)."""
    return Path(__file__).resolve().parents[1] / "assets" / "samples"


def list_samples(folder: str | Path) -> Samples:
    """Images and the first video in ``folder`` (sorted by name).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"samples folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    return Samples(images, videos[0] if videos else None, str(folder))


def synthetic_samples(
    folder: str | Path, *, images: int = 4, size: int = 320, frames: int = 24, seed: int = 7
) -> Samples:
    """Draw ``images`` synthetic scenes and one ``frames``-frame video into ``folder`` (reused if there).

    Returns:
        ``Samples`` with ``sample_<k>.png`` files and ``sample_video.mp4``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pngs = [folder / f"sample_{k + 1}.png" for k in range(images)]
    video = folder / "sample_video.mp4"
    if all(p.exists() for p in pngs) and video.exists():
        return Samples(pngs, video, "synthetic")
    import tempfile

    from ..data.synth import generate
    from ..io.image import write_png
    from ..io.video import VideoWriter

    with tempfile.TemporaryDirectory(prefix="rapsam_synth_") as tmp:
        paths = generate(
            Path(tmp) / "synth",
            images=images,
            videos=1,
            size=size,
            seed=seed,
            frames=frames,
            val_fraction=0.0,
        )
        truth = paths.truth
        for p, im in zip(pngs, truth.images):
            write_png(p, im.image)
        with VideoWriter(video, fps=8) as w:
            for frame in truth.videos[0].frames:
                w.write(frame)
    return Samples(pngs, video, "synthetic")


def find_samples(work_dir: str | Path, folder: str | Path | None = None) -> Samples:
    """The samples to offer: ``folder`` if given, else the bundled ones, else synthetic ones."""
    if folder is not None:
        return list_samples(folder)
    bundled = bundled_samples_dir()
    if bundled.is_dir():
        s = list_samples(bundled)
        if s.images:
            return s
    return synthetic_samples(Path(work_dir) / "samples")
