"""Locating the project root and resolving the relative paths used in parameters."""

from __future__ import annotations

import os
from pathlib import Path

#: What a run keeps of each model, in ``runs/<run_id>/<model dir>/``: the pointer to the saved
#: model (its folder, inputs and feature version) and its predictions of every part.
MODEL_POINTER = "model.json"
PREDICTIONS = "predictions.csv"


def _is_project_root(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return False
    return 'name = "audioreg"' in text


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """Return the audioreg project root.

    Walks up from ``start`` (default: the current directory) to the first folder
    holding the project's ``pyproject.toml``; so notebooks work whether they are run
    from the repo root or from ``notebooks/``. Falls back to the checkout this
    package was installed from (editable installs), then to ``start`` itself.
    """
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if _is_project_root(folder):
            return folder
    package_checkout = Path(__file__).resolve().parents[2]
    if _is_project_root(package_checkout):
        return package_checkout
    return here


def resolve_root(root: str | os.PathLike | None) -> Path:
    """``root`` parameter -> absolute folder; empty means :func:`repo_root`."""
    if root is None or str(root).strip() == "":
        return repo_root()
    return Path(root).expanduser().resolve()


def resolve(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Resolve ``path`` against ``root`` unless it is already absolute."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (Path(root) / p)
