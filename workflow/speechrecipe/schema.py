"""The config checked against its schema (``workflow/schemas/config.schema.yaml``), for people.

Snakemake's own ``validate`` reports a bad key by dumping the whole schema and config (1,776
lines for one unknown key). :func:`check_config` runs first and reports each problem in a few
lines: the key with its path, what it is, what it must be (the closest valid key, the allowed
values, the key's description). It also gives nested ``--config`` overrides their types:
Snakemake parses ``--config 'am={"train": {"max_epochs": 8}}'`` with YAML's base loader,
so every nested value arrives as a string ('8'); where the schema wants a number, a boolean or
null and the string is one, it is converted.
"""

from __future__ import annotations

import re
from pathlib import Path

from .config import ConfigError, closest, unknown_key_message

MAX_PROBLEMS = 5


def load_schema(path: str | Path) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def check_config(config: dict, schema: dict) -> None:
    """Give string overrides their schema types (in place), then raise :class:`ConfigError` describing
    every problem in a few lines, or return when the config is valid."""
    type_strings(config, schema)
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    problems = [describe(error, schema) for error in errors[:MAX_PROBLEMS]]
    more = f"\n... and {len(errors) - MAX_PROBLEMS} more problem(s)" if len(errors) > MAX_PROBLEMS else ""
    raise ConfigError(
        "invalid config (config.yaml, --configfile and --config together):\n"
        + "\n".join(f"- {p}" for p in problems)
        + more
        + "\nEvery key is documented in workflow/schemas/config.schema.yaml."
    )


def type_strings(value, schema: dict):
    """``value`` with strings turned into the number, boolean or null the schema wants there (dicts in place)."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = type_strings(item, sub)
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [type_strings(item, schema["items"]) for item in value]
    if isinstance(value, str):
        if value not in schema.get("enum", [value]):  # e.g. use_gpu: 'false' for false
            return next((v for v in schema["enum"] if str(v).lower() == value.lower()), value)
        return _typed(value, _types(schema))
    return value


def _types(schema: dict) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _typed(text: str, types: list[str]):
    """The value ``text`` spells in the first of ``types`` it fits, or ``text`` itself."""
    if "string" in types:
        # A number or a word (am.model.hidden: 256 or auto): "256" from the command line is the number.
        numbers = [kind for kind in types if kind in ("integer", "number")]
        return _typed(text, numbers) if numbers else text
    lowered = text.strip().lower()
    for kind in types:
        try:
            if kind == "integer":
                return int(text)
            if kind == "number":
                return float(text) if any(c in lowered for c in ".e") else int(text)
        except ValueError:
            continue
        if kind == "boolean" and lowered in ("true", "false"):
            return lowered == "true"
        if kind == "null" and lowered in ("null", "none", "~", ""):
            return None
    return text


def _path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def describe(error, schema: dict) -> str:
    """One problem, for a person: the key and its path, what is wrong, what would be right."""
    where = _path(error)
    if error.validator == "additionalProperties":
        valid = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in valid]
        return "\n  ".join(unknown_key_message(k, where, valid) for k in unknown)
    described = _schema_at(schema, list(error.absolute_path))
    about = f" ({described['description'].strip()})" if described and described.get("description") else ""
    shown = repr(error.instance)
    if error.validator == "enum":
        guess = closest(str(error.instance), [str(v) for v in error.validator_value])
        hint = f"; did you mean '{guess}'?" if guess else ""
        return (
            f"{where} is {shown}: allowed values are {', '.join(map(str, error.validator_value))}{hint}{_short(about)}"
        )
    if error.validator == "type":
        return (
            f"{where} is {shown} ({type(error.instance).__name__}); it must be of type "
            f"{error.validator_value}{_short(about)}"
        )
    if error.validator == "pattern" and re.fullmatch(r"\^\w+\$", error.validator_value):
        word = error.validator_value[1:-1]  # a number or one word (am.model.hidden: 256 or auto)
        return f"{where} is {shown}: it must be a number or '{word}'{_short(about)}"
    return f"{where or 'config'} is {shown}: {error.message}{_short(about)}"


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 4] + "...)"


def _schema_at(schema: dict, path: list) -> dict | None:
    for part in path:
        if isinstance(part, int):
            schema = schema.get("items", {})
            continue
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        schema = properties.get(part, extra if isinstance(extra, dict) else None)
        if schema is None:
            return None
    return schema
