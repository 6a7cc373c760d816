"""Run parameters: YAML files, command-line overrides, and checking them against the notebooks.

Precedence: ``params/base.yaml`` < ``params/<experiment>.yaml`` (in the order given)
< ``-p key value``. Papermill only warns on an unknown parameter, so a typo would
silently run with the default; :func:`check_known` makes it an error instead.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from . import atomic

_SIMPLE = (str, int, float, bool)


class UnknownParameterError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a flat YAML mapping of parameters."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of parameter: value")
    nested = [k for k, v in data.items() if isinstance(v, (dict, list))]
    if nested:
        raise ValueError(f"{path}: parameters must be flat values; {', '.join(nested)} are not")
    return data


def parse_value(text: str) -> Any:
    """Parse a ``-p`` value the way YAML does: ``0.5`` -> float, ``true`` -> bool, ``abc`` -> str."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, _SIMPLE) or value is None else text


def merge(base: Mapping, *layers: Mapping) -> dict:
    """Later layers win; returns a new dict."""
    out = dict(base)
    for layer in layers:
        out.update(layer)
    return out


def notebook_parameters(path: str | os.PathLike) -> dict[str, dict]:
    """Parameters declared in a notebook's ``parameters`` cell (via papermill)."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def notebook_defaults(path: str | os.PathLike) -> dict[str, Any]:
    """Default values of a notebook's parameters, evaluated as Python literals."""
    import ast

    out = {}
    for name, spec in notebook_parameters(path).items():
        out[name] = ast.literal_eval(spec["default"])
    return out


def check_known(params: Mapping, declared: Iterable[str], *, source: str = "parameters") -> None:
    """Raise :class:`UnknownParameterError` for any key no notebook declares."""
    declared = sorted(set(declared))
    unknown = [k for k in params if k not in declared]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, declared, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise UnknownParameterError(
            f"unknown parameter {', '.join(hints)} in {source}: no notebook declares it. "
            f"Known parameters: {', '.join(declared)}"
        )


def pick(namespace: Mapping[str, Any]) -> dict:
    """The parameters visible in a notebook namespace: public names bound to simple literals.

    Call right after the ``parameters`` cell (and papermill's injected cell):
    ``params = audioreg.params.pick(globals())``.
    """
    return {k: v for k, v in namespace.items() if not k.startswith("_") and isinstance(v, _SIMPLE)}


def digest(obj: Any, *, length: int = 12) -> str:
    """Short content key of a JSON-serializable object."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def save_yaml(params: Mapping, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_yaml(path, params)
