"""Parameters: a block's `params` and the `with` that fills them."""

from __future__ import annotations

from typing import Any

from .checker import Checker, KeyPath, suggest
from .model import PARAM_FIELD


def substitute(value: Any, params: dict[str, Any]) -> Any:
    """Put parameter values into a block's steps: `{hold}` alone (quoted or not) takes the
    value itself, so a number stays a number; inside text, `{name}` becomes the value's text.
    Fields that are not parameters (such as {side}) are left for later."""
    if not params:
        return value
    if isinstance(value, str):
        whole = PARAM_FIELD.fullmatch(value.strip())
        if whole and whole.group(1) in params:
            return params[whole.group(1)]
        return PARAM_FIELD.sub(lambda m: str(params[m.group(1)]) if m.group(1) in params else m.group(0), value)
    if isinstance(value, list):
        return [substitute(v, params) for v in value]
    if isinstance(value, dict):
        # Unquoted, `hold: {hold}` is YAML for a mapping {hold: null}; it means the parameter.
        if len(value) == 1:
            (name, inner), = value.items()
            if inner is None and name in params:
                return params[name]
        return {k: substitute(v, params) for k, v in value.items()}
    return value


def merge_params(declared: Any, given: Any, given_keys: KeyPath, check: Checker, owner: str,
            missing_at: KeyPath) -> dict[str, Any] | None:
    """Declared defaults overridden by the given values; None when something is wrong."""
    declared = declared if isinstance(declared, dict) else {}
    given = given if isinstance(given, dict) else {}
    ok = True
    for name in given:
        if name not in declared:
            known = ", ".join(declared) or "none"
            check.error(given_keys + (name,), f"{owner} has no parameter '{name}'{suggest(name, list(declared))}; "
                        f"its parameters: {known}", at_key=True)
            ok = False
    for name, default in declared.items():
        if default is None and name not in given:
            check.error(missing_at, f"{owner} needs the parameter '{name}': add `with: {{{name}: ...}}`")
            ok = False
    return {**declared, **given} if ok else None

