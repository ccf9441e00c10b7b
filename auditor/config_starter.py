"""`auditor init [DIR]`: a commented starter config and a sample ledger."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import AuditorError

__all__ = ["STARTER_FILES", "write_starter"]

STARTER_FILES = ("auditor.yaml", "liabilities.csv")


def write_starter(directory: Path) -> list[Path]:
    """Write the starter files into `directory` (created if missing); never overwrite."""
    directory = Path(directory)
    targets = [directory / name for name in STARTER_FILES]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise AuditorError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                           "refusing to overwrite: move it away or choose another directory "
                           "(`auditor init DIR`)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        templates = resources.files("auditor") / "templates"
        for target in targets:
            text = (templates / target.name).read_text(encoding="utf-8")
            with open(target, "x", encoding="utf-8") as f:  # "x": never clobber a racing file
                f.write(text)
    except OSError as e:
        raise AuditorError(f"cannot write the starter files into {directory}: "
                           f"{e.strerror or e}; check the directory's permissions") from e
    return targets
