"""Run parameters: YAML files, command-line overrides, and checking them against the notebooks.

Precedence: ``params/base.yaml`` < ``params/<experiment>.yaml`` (in the order given)
< ``-p key value``. Papermill only warns on an unknown parameter, so a typo would
silently run with the default; :func:`check_known` makes it an error instead.

Each notebook declares only its own settings (plus ``root``, ``run_id`` and ``seed``).
The run's merged parameters live in ``runs/<run_id>/params.yaml``: :func:`pick` completes
a notebook's own values with the upstream settings saved there (``params/base.yaml`` when
the run has none yet) and saves its own values back, so the notebooks of one run, whether
run by ``audioreg run`` or one by one with papermill, all see the same settings.
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
from .paths import repo_root, resolve_root

#: The run's merged parameters, in ``runs/<run_id>/``.
RUN_PARAMS = "params.yaml"

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
    """A notebook's parameters, completed with its run's: call right after the ``parameters``
    cell (and papermill's injected cell): ``params = audioreg.params.pick(globals())``.

    The notebook's own values are the public names of ``namespace`` bound to simple
    literals; :func:`run_params` completes and records them. In a kernel that papermill
    ran, it first checks the injected cell against the ``parameters`` cell before it:
    papermill only warns about a parameter the notebook does not declare (a typo such as
    ``-p dropuot 0.5`` would run with the default), so that is an
    :class:`UnknownParameterError` here.
    """
    check_injected(namespace.get("In"))
    return run_params({k: v for k, v in namespace.items() if not k.startswith("_") and isinstance(v, _SIMPLE)})


def base_params() -> dict:
    """``params/base.yaml`` of the project checkout: the default of every run parameter."""
    path = repo_root() / "params" / "base.yaml"
    return load_yaml(path) if path.is_file() else {}


def run_params_path(params: Mapping[str, Any]) -> Path:
    """``<root>/runs/<run_id>/params.yaml`` of the run ``params`` name."""
    return resolve_root(params.get("root", "")) / "runs" / str(params["run_id"]) / RUN_PARAMS


def run_params(own: Mapping[str, Any], *, save: bool = True) -> dict:
    """``own`` (one notebook's values) over its run's saved parameters over ``base.yaml``.

    Without a ``run_id`` in ``own``, ``base.yaml`` < ``own``. With one, the upstream
    settings come from ``runs/<run_id>/params.yaml`` (missing keys from ``base.yaml``), and,
    with ``save``, the run parameters ``own`` sets (the keys ``base.yaml`` lists) are
    written back there when they differ, so later notebooks of the run read them.
    """
    base = base_params()
    if "run_id" not in own:
        return merge(base, own)
    path = run_params_path(own)
    saved = load_yaml(path) if path.is_file() else {}
    merged = merge(base, saved, own)
    if save:
        record = merge(saved, {k: v for k, v in own.items() if k in base or k in saved})
        if record != saved:
            save_yaml(record, path)
    return merged


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


def estimator_settings(cls: type, params: Mapping[str, Any]) -> dict:
    """The keyword arguments of estimator class ``cls`` that the run parameters ``params`` set.

    A setting ``name`` is read from the parameter ``<cls.PARAM_PREFIX><name>`` (the prefix is
    empty unless the class sets one: the forest's ``n_iter`` is ``rf_n_iter``), and
    ``random_state`` from the one ``seed``.
    """
    prefix = getattr(cls, "PARAM_PREFIX", "")
    names = cls._get_param_names()
    out = {name: params[prefix + name] for name in names if prefix + name in params}
    if "random_state" in names and "seed" in params:
        out["random_state"] = int(params["seed"])
    return out


def digest(obj: Any, *, length: int = 12) -> str:
    """Short content key of a JSON-serializable object."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def save_yaml(params: Mapping, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_yaml(path, params)
