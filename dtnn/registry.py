"""Name -> factory registries, so components are chosen by name from config/CLI.

Usage::

    LAYERS = Registry("layer")

    @LAYERS.register("dense")
    class Dense(Layer): ...

    LAYERS.get("dense")  # -> Dense
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, TypeVar

from dtnn.errors import ConfigError

T = TypeVar("T")


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, object] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._items[name] = obj
            try:
                obj.registry_name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return decorator

    def get(self, name: str):
        try:
            return self._items[name]
        except KeyError:
            choices = ", ".join(sorted(self._items)) or "(none)"
            raise ConfigError(f"unknown {self.kind} '{name}' (choose from: {choices})") from None

    def names(self) -> list:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
