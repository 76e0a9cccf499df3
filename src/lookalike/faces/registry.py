"""Model registry: a name maps to a model card and a factory that builds the model.

Cards are available without importing heavy dependencies (``lookalike models`` lists them instantly);
the factory runs, once per process, on first use. Register a model with::

    @register(ModelCard(name="my-model", ...))
    def _build(card: ModelCard) -> FaceModel: ...

or ``register(ModelCard(...))(MyModel)`` for a class whose constructor takes the card.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable

from lookalike.errors import ModelNotInstalled, UnknownModel
from lookalike.faces.types import FaceModel, ModelCard

_CARDS: dict[str, ModelCard] = {}
Factory = Callable[[ModelCard], FaceModel]

_FACTORIES: dict[str, Factory] = {}
_ALIASES: dict[str, str] = {}
_LOADED: dict[str, FaceModel] = {}
_LOCK = threading.RLock()  # re-entrant: a factory may build other models (fusion)

#: The model used when none is named: the most accurate one measured on LFW (see README).
DEFAULT_MODEL = "fr-feature"


def register(card: ModelCard) -> Callable[[Factory], Factory]:
    """Decorator: register ``factory`` under ``card.name`` (and its aliases)."""

    def deco(factory: Factory) -> Factory:
        _CARDS[card.name] = card
        _FACTORIES[card.name] = factory
        _LOADED.pop(card.name, None)  # a model built from an earlier card of that name is stale
        for alias in card.aliases:
            _ALIASES[alias] = card.name
        return factory

    return deco


def _ensure_builtin() -> None:
    # Importing the module registers the built-in models.
    from lookalike.faces import models  # noqa: F401


def builtin_names() -> set[str]:
    _ensure_builtin()
    from lookalike.faces import user_models

    return {n for n in _CARDS if n not in user_models._REGISTERED} | set(_ALIASES)


def unregister(name: str) -> None:
    """Forget a (user) model in this process."""
    with _LOCK:
        _CARDS.pop(name, None)
        _FACTORIES.pop(name, None)
        _LOADED.pop(name, None)


def resolve_name(name: str | None) -> str:
    """Canonical model name for ``name`` (``None`` or ``'default'`` give :data:`DEFAULT_MODEL`); models users
    added (:mod:`lookalike.faces.user_models`) are found too."""
    _ensure_builtin()
    if name is None or name.lower() == "default":
        return DEFAULT_MODEL
    key = _ALIASES.get(name, name)
    if key not in _CARDS:
        from lookalike.faces.user_models import register_user_models

        register_user_models()
        key = _ALIASES.get(name, name.lower() if name.lower() in _CARDS else name)
    if key not in _CARDS:
        raise UnknownModel(
            f"unknown face model {name!r}",
            hint="available models: " + ", ".join(sorted(_CARDS)),
        )
    return key


def get_card(name: str | None = None) -> ModelCard:
    return _CARDS[resolve_name(name)]


def list_cards() -> list[ModelCard]:
    _ensure_builtin()
    from lookalike.faces.user_models import register_user_models

    register_user_models()
    return [_CARDS[k] for k in sorted(_CARDS, key=lambda n: (n != DEFAULT_MODEL, n))]


def is_installed(name: str) -> bool:
    """Whether the optional packages a model needs can be imported."""
    card = get_card(name)
    return all(importlib.util.find_spec(mod) is not None for mod in card.requires)


def get_model(name: str | None = None) -> FaceModel:
    """The loaded model ``name`` (built once per process, thread-safe)."""
    key = resolve_name(name)
    with _LOCK:
        model = _LOADED.get(key)
        if model is None:
            card = _CARDS[key]
            if not is_installed(key):
                raise ModelNotInstalled(
                    f"face model {key!r} needs packages that are not installed: {', '.join(card.requires)}",
                    hint=card.install_hint or None,
                )
            model = _FACTORIES[key](card)
            _LOADED[key] = model
    return model
