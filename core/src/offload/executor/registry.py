"""The classes plugins register (backends, storages), by name, with the plugin of each."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Registered classes of one kind (``"backend"``, ``"storage"``) by their ``name``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, T] = {}
        self._origin: dict[str, str] = {}

    def register(self, cls: T, origin: str = "") -> None:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.kind} class {cls!r} has no name")
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"{self.kind} {name!r} registered twice ({self._origin[name]} and {origin})")
        self._classes[name] = cls
        self._origin[name] = origin

    def get(self, name: str) -> T | None:
        return self._classes.get(name)

    def origin(self, name: str) -> str:
        return self._origin.get(name, "")

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes
