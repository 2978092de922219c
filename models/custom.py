"""Models of your own: ``package.module:callable`` wherever the zoo's names are taken to make a fresh
model (`backtest --model`), as uvicorn and gunicorn name an application.

The callable returns a River classifier (a pipeline ending in one too): it gets ``seed=`` when it
takes a ``seed`` argument, and nothing otherwise. The module is imported as any other, so it must
be importable where the model is made and wherever its checkpoints are loaded (installed, or on
``PYTHONPATH``): a checkpoint is a pickle, which refers to the model's classes by module.

A model of your own reaches the live consumers through a checkpoint, after a backtest: ``backtest
--model package.module:callable --save-model FILE``, then ``models import FILE`` and ``models
promote``. Its checkpoints' kind is the spec; their default registry name is the spec with ``.``
for ``:`` (registry names have no colon).

>>> factory = custom_factory("river.naive_bayes:GaussianNB")
>>> type(factory(7)).__name__
'GaussianNB'
>>> registry_name("my_models.fraud:build")
'my_models.fraud.build'
>>> custom_factory("river.preprocessing:StandardScaler")(1)
Traceback (most recent call last):
...
fraudstream.errors.ModelError: river.preprocessing:StandardScaler returned a StandardScaler, not a River classifier (learn_one(x, y), predict_proba_one(x)); a pipeline must end in one
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from river import base, compose

from fraudstream.errors import ModelError, UnpicklableModel
from fraudstream.models.checkpoint import pickled

#: ``package.module:callable``: dotted identifiers, one colon.
SPEC = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


def is_spec(name: str) -> bool:
    """Whether `name` is meant as a callable of your own rather than a zoo model (a colon; whether
    it is well formed, `custom_factory` says).

    >>> is_spec("gbt_window"), is_spec("pkg.mod:build"), is_spec("pkg.mod:")
    (False, True, True)
    """
    return ":" in name


def registry_name(spec: str) -> str:
    """The registry name a checkpoint of `spec` gets unless given another (``:`` becomes ``.``)."""
    return spec.replace(":", ".").lstrip("_")[:64]


def custom_factory(spec: str) -> Callable[[int], base.Classifier]:
    """The factory of `spec`: seed -> a fresh classifier, checked to be one. `ModelError` naming the
    spec when it is malformed, its module cannot be imported, or it names no callable."""
    if not SPEC.fullmatch(spec):
        raise ModelError(f"model {spec!r}: a model of your own is named package.module:callable (a zoo name has no colon)")
    module_name, attribute = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        ours = missing is not None and (module_name == missing or module_name.startswith(missing + "."))
        if isinstance(exc, ModuleNotFoundError) and ours:
            raise ModelError(f"model {spec}: cannot import {module_name} ({exc}); install it or put its directory on "
                             "PYTHONPATH") from None
        if isinstance(exc, ModuleNotFoundError) and missing:  # the module is there; one it imports is not
            raise ModelError(f"model {spec}: {module_name} imports {missing}, which is not installed here "
                             f"({exc})") from None
        raise ModelError(f"model {spec}: cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    except (Exception, SystemExit) as exc:  # SyntaxError, or any error its top level raises (an argparse's exit)
        raise ModelError(f"model {spec}: cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    target = getattr(module, attribute, None)
    if not callable(target):
        raise ModelError(f"model {spec}: {module_name} has no callable {attribute!r}")
    parameters = _parameters(target)
    takes_seed = "seed" in parameters
    required = _required_besides_seed(parameters)
    if required:
        raise ModelError(f"model {spec}: {module_name}.{attribute} is called with seed= at most, but requires "
                         f"{', '.join(required)}: give it a default, or wrap it in a function that takes only seed")

    def factory(seed: int) -> base.Classifier:
        try:
            model = target(seed=seed) if takes_seed else target()
        except (Exception, SystemExit) as exc:  # the user's code: its error, in one line (the traceback at debug)
            raise ModelError(f"model {spec}: {module_name}.{attribute} raised {type(exc).__name__}: {exc}") from exc
        if not is_classifier(model):
            raise ModelError(f"{spec} returned a {type(model).__name__}, not a River classifier (learn_one(x, y), "
                             "predict_proba_one(x)); a pipeline must end in one")
        try:  # now, not when a backtest's end or a live learner checkpoints it
            pickled(model, f"model {spec}")
        except UnpicklableModel as exc:
            raise ModelError(f"model {spec}: its model cannot be pickled ({exc.__cause__}), and a checkpoint is a "
                             "pickle: define the functions it uses (a FuncTransformer's, say) at the top level of a "
                             "module, not as a lambda or inside the callable") from exc
        return model  # type: ignore[no-any-return]

    factory.__doc__ = _first_line(target.__doc__) or f"a model of your own, from {spec}"
    return factory


def is_classifier(model: object) -> bool:
    """Whether `model` is a River classifier, a pipeline being one when its last step is.

    River's ``isinstance(pipeline, base.Classifier)`` looks into a pipeline only in newer River (0.24.2
    does, 0.23.0 does not; 0.24 needs Python 3.11), and raises IndexError on an empty one.

    >>> from river import naive_bayes, preprocessing
    >>> is_classifier(preprocessing.StandardScaler() | naive_bayes.GaussianNB())
    True
    >>> is_classifier(naive_bayes.GaussianNB() | preprocessing.StandardScaler()), is_classifier(compose.Pipeline())
    (False, False)
    """
    if isinstance(model, compose.Pipeline):
        steps = list(model.steps.values())
        return bool(steps) and is_classifier(steps[-1])
    return isinstance(model, base.Classifier)


def _parameters(target: Any) -> Mapping[str, inspect.Parameter]:
    """The callable's parameters by name (none known for a builtin without a signature)."""
    try:
        return inspect.signature(target).parameters
    except (TypeError, ValueError):
        return {}


def _required_besides_seed(parameters: Mapping[str, inspect.Parameter]) -> list[str]:
    """The parameters without a default that the factory cannot give (any but ``seed``)."""
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in parameters.values()
            if p.default is p.empty and p.kind not in variadic and p.name != "seed"]


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0]
