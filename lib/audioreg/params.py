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


def check_known(params: Mapping, declared: Iterable[str], *, source: str = "parameters",
                reason: str = "no notebook declares it") -> None:
    """Raise :class:`UnknownParameterError` for any key that ``declared`` lacks."""
    declared = sorted(set(declared))
    unknown = [k for k in params if k not in declared]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, declared, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise UnknownParameterError(
            f"unknown parameter {', '.join(hints)} in {source}: {reason}. "
            f"Known parameters: {', '.join(declared)}"
        )


def pick(namespace: Mapping[str, Any]) -> dict:
    """The parameters visible in a notebook namespace: public names bound to simple literals.

    Call right after the ``parameters`` cell (and papermill's injected cell):
    ``params = audioreg.params.pick(globals())``. In a kernel that papermill ran, it first
    checks the injected cell against the ``parameters`` cell before it: papermill only
    warns about a parameter the notebook does not declare (a typo such as ``-p dropuot
    0.5`` would run with the default), so that is an :class:`UnknownParameterError` here.
    """
    check_injected(namespace.get("In"))
    return {k: v for k, v in namespace.items() if not k.startswith("_") and isinstance(v, _SIMPLE)}


def check_injected(inputs: Any) -> None:
    """Raise :class:`UnknownParameterError` if papermill injected a name the parameters cell lacks.

    ``inputs`` is IPython's ``In`` (the executed cells' sources, in order); outside a
    kernel there is nothing to check. The injected cell is the one papermill starts with
    ``# Parameters``; the parameters cell is the one executed just before it, and declares
    ``name: type = value`` lines.
    """
    import ast

    if not isinstance(inputs, list):
        return
    for i, source in enumerate(inputs):
        if i == 0 or not isinstance(source, str) or not source.lstrip().startswith("# Parameters"):
            continue
        try:
            declared_cell, injected_cell = ast.parse(str(inputs[i - 1])), ast.parse(source)
        except SyntaxError:  # IPython magics: not a cell we can read
            return
        declared = {n.target.id for n in declared_cell.body
                    if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        injected = [t.id for n in injected_cell.body if isinstance(n, ast.Assign)
                    for t in n.targets if isinstance(t, ast.Name)]
        if declared and injected:
            check_known(dict.fromkeys(injected), declared, source="the parameters papermill injected",
                        reason="this notebook's parameters cell does not declare it")


def check_types(params: Mapping, types: Mapping[str, str], *, source: str = "parameters") -> None:
    """Raise ValueError for a value whose type is not the one its ``parameters`` cell declares.

    ``types`` maps a parameter to its declared type name (``"float"``, ``"int"``, ``"bool"``,
    ``"str"``, as papermill infers them). An int passes as a float; a bool is never a number.
    """
    wrong = []
    for key, value in params.items():
        want = types.get(key)
        if want is None or want == "None":
            continue
        ok = {"float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "bool": isinstance(value, bool),
              "str": isinstance(value, str)}.get(want, True)
        if not ok:
            wrong.append(f"{key} must be {want}, not {value!r} ({type(value).__name__})")
    if wrong:
        raise ValueError(f"wrong type in {source}: " + "; ".join(wrong))


def digest(obj: Any, *, length: int = 12) -> str:
    """Short content key of a JSON-serializable object."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def save_yaml(params: Mapping, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_yaml(path, params)
