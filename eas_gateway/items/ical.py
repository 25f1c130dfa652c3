"""Small iCalendar helpers the calendar, task and note conversions share (on icalendar's
components)."""

from __future__ import annotations

from typing import Any

# MS-ASCAL / MS-ASTASK Sensitivity: 0 normal, 1 personal, 2 private, 3 confidential, from and to CLASS.
SENSITIVITY = {"PUBLIC": 0, "PRIVATE": 2, "CONFIDENTIAL": 3}
SENSITIVITY_NAMES = {0: "PUBLIC", 1: "PRIVATE", 2: "PRIVATE", 3: "CONFIDENTIAL"}


def text(component: Any, name: str) -> str | None:
    """A property's value as text (the first, if repeated); None if absent."""
    value = component.get(name)
    if value is None:
        return None
    return str(value[0] if isinstance(value, list) else value)


def as_list(value: Any) -> list[Any]:
    """A property that may be repeated, as a list."""
    return value if isinstance(value, list) else [value] if value is not None else []


def address(value: Any) -> str:
    """A calendar user address without its mailto: scheme."""
    found = str(value).strip()
    return found[7:] if found.lower().startswith("mailto:") else found


def categories(component: Any) -> list[str]:
    found: list[str] = []
    for item in as_list(component.get("CATEGORIES")):
        found += [str(c) for c in getattr(item, "cats", [])]
    return found


def sensitivity(component: Any) -> int:
    return SENSITIVITY.get((text(component, "CLASS") or "PUBLIC").upper(), 0)


def replace(component: Any, name: str, value: Any, parameters: dict[str, str] | None = None) -> None:
    """Set a property (None or "": remove it)."""
    if name in component:
        del component[name]
    if value is not None and value != "":
        component.add(name, value, parameters=parameters)
