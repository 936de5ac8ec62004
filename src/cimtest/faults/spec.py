"""The fault spec language, one for the CLI, TOML files and the API.

``mult:eta=0.02+bitflip:p=1e-5@layers=0.3`` is a multiplicative variation on every mapped
layer followed by bit-flips on a random 30 % of the layers of each chip (see `GRAMMAR`).
A FRACTION is a number written with a decimal point or an exponent (``0.3``, ``1.0``,
``5e-1``); anything else after ``layers=`` is a list of layer names, so ``layers=1`` names a
layer called ``1``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import tomllib
import typing
from os import PathLike

from cimtest.exceptions import ConfigError
from cimtest.faults.aihwkit import AihwkitPCM, AihwkitReRAM, AihwkitReRAMCMO
from cimtest.faults.base import Fault, FaultStack, Scope, _format_value
from cimtest.faults.cell import BitFlip, LevelFlip, StuckAt
from cimtest.faults.drift import Drift
from cimtest.faults.presets import PRESETS
from cimtest.faults.retention import Retention
from cimtest.faults.variation import AdditiveVariation, MultiplicativeVariation, RRAMVariation

__all__ = ["FAULT_KINDS", "GRAMMAR", "dump_toml", "load_toml", "parse_spec", "read_fault"]

GRAMMAR = (
    'spec := "none" | fault ("+" fault)* ; '
    'fault := NAME [":" key "=" value ("," key "=" value)*] ("@" modifier)* ; '
    'modifier := "layers=" (FRACTION | LAYER ("," LAYER)*) | "per-read"'
)
"""The spec grammar (`cimtest help faults` prints it); NAME is a fault kind or a preset."""

HELP = "see `cimtest help faults`"
"""Where every parse error points for the grammar, the kinds, their keys and the presets."""

FAULT_KINDS: dict[str, type[Fault]] = {
    cls.kind: cls
    for cls in (
        BitFlip,
        LevelFlip,
        StuckAt,
        MultiplicativeVariation,
        AdditiveVariation,
        RRAMVariation,
        Drift,
        Retention,
        AihwkitPCM,
        AihwkitReRAM,
        AihwkitReRAMCMO,
    )
}
"""Fault classes by their spec keyword."""

_TERMS = re.compile(r"(?<![0-9][eE])\+")
"""A ``+`` between faults (not the sign of an exponent such as ``1e+3``)."""
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


def parse_spec(
    text: str, *, allow_missing_level: bool = False, allow_missing_time: bool = False
) -> FaultStack:
    """Parse fault spec text into a `FaultStack`.

    Parameters
    ----------
    text : str
        E.g. ``"none"``, ``"mult:eta=0.05"``, ``"bitflip:p=1e-4@layers=0.3"``,
        ``"egis-typical:sigma=0.3"`` or ``"mult:eta=0.02+bitflip:p=1e-5@per-read"``.
    allow_missing_level : bool, default False
        Accept a fault without its level parameter (``p``, ``eta`` or ``sigma``) and set the
        level to 0, for ``cimtest calibrate``, which searches it. Otherwise it is required.
    allow_missing_time : bool, default False
        Accept a fault with a time model (``drift``, ``retention``) without its age ``t``
        and set it to 0, for ``--at``, which sets it (`FaultStack.at`).

    Returns
    -------
    FaultStack
        The faults in written order; ``FaultStack(())`` for ``"none"``.

    Raises
    ------
    ConfigError
        For any malformed spec or out-of-range value: one line naming the problem and
        pointing to `cimtest help faults`.
    """
    if not isinstance(text, str):
        raise ConfigError(f"a fault spec is a string; got {text!r} ({HELP})")
    if text.strip() == "none":
        return FaultStack(())
    faults: list[Fault] = []
    try:
        for term in _TERMS.split(text.strip()):
            faults.extend(_parse_term(term.strip(), allow_missing_level, allow_missing_time))
    except ConfigError as error:
        message = str(error).rstrip(".")
        raise ConfigError(f"bad fault spec {text!r}: {message} ({HELP})") from error
    return FaultStack(tuple(faults))


def read_fault(source: str) -> FaultStack:
    """A fault stack from spec text, or from a TOML file when `source` ends in ``.toml``."""
    return load_toml(source) if source.endswith(".toml") else parse_spec(source)


def load_toml(path: str | PathLike[str]) -> FaultStack:
    """Read a fault stack from a TOML file of ``[[fault]]`` tables, applied in file order.

    Each table has ``kind`` (a fault kind or a preset), the kind's parameters under their
    spec keys, and optionally ``layers`` (a fraction such as ``0.3``, or a list of layer
    names) and ``per_read`` (bool)::

        [[fault]]
        kind = "mult"
        eta = 0.05
        layers = ["conv1", "layer1.0.conv2"]
        per_read = false

    A file without ``[[fault]]`` tables is the ideal chip.

    Raises
    ------
    ConfigError
        If the file cannot be read, is not TOML, or a table is malformed or out of range.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read fault file {str(path)!r}: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"fault file {str(path)!r} is not valid TOML: {error}") from error
    if set(data) - {"fault"} or not isinstance(data.get("fault", []), list):
        raise ConfigError(
            f"fault file {str(path)!r} must hold only [[fault]] tables; got keys {sorted(data)}"
        )
    faults: list[Fault] = []
    for number, table in enumerate(data.get("fault", []), start=1):
        try:
            faults.extend(_parse_table(table))
        except ConfigError as error:
            message = str(error).rstrip(".")
            raise ConfigError(f"fault file {str(path)!r}, [[fault]] #{number}: {message} "
                              f"({HELP})") from error
    return FaultStack(tuple(faults))


def dump_toml(stack: FaultStack) -> str:
    """TOML text of `stack` that `load_toml` reads back to an equal stack."""
    tables = []
    for fault in stack.faults:
        lines = ["[[fault]]", f"kind = {json.dumps(fault.kind)}"]
        for key, field in fault._fields_by_key().items():
            value = getattr(fault, field.name)
            if isinstance(value, str):
                lines.append(f"{key} = {json.dumps(str(value))}")
            elif value is not None:
                lines.append(f"{key} = {_format_value(value)}")
        if fault.scope.fraction is not None:
            lines.append(f"layers = {_format_value(float(fault.scope.fraction))}")
        elif fault.scope.layers is not None:
            lines.append(f"layers = [{', '.join(json.dumps(n) for n in fault.scope.layers)}]")
        if fault.per_read:
            lines.append("per_read = true")
        tables.append("\n".join(lines) + "\n")
    return "\n".join(tables)


def _parse_term(
    term: str, allow_missing_level: bool, allow_missing_time: bool = False
) -> tuple[Fault, ...]:
    """Faults of one ``+``-separated term (several only for a multi-fault preset)."""
    if not term:
        raise ConfigError("empty term (nothing between two '+' or at an end).")
    head, *modifiers = term.split("@")
    name, colon, body = head.partition(":")
    params: dict[str, object] = {}
    if colon:
        for item in body.split(","):
            key, equals, value = (part.strip() for part in item.partition("="))
            if not (equals and key and value):
                raise ConfigError(f"expected key=value in {term!r}, got {item.strip()!r}.")
            if key in params:
                raise ConfigError(f"key {key!r} is given twice in {term!r}.")
            params[key] = value
    scope, per_read, seen = Scope(), False, set()
    for modifier in (m.strip() for m in modifiers):
        word = modifier.partition("=")[0]
        if word in seen:
            raise ConfigError(f"modifier {'@' + word!r} is given twice in {term!r}.")
        seen.add(word)
        if modifier == "per-read":
            per_read = True
        elif modifier.startswith("layers="):
            scope = _parse_layers(modifier.removeprefix("layers="))
        else:
            raise ConfigError(f"unknown modifier {'@' + modifier!r} in {term!r}.")
    return _build(name.strip(), params, scope, per_read,
                  allow_missing_level or allow_missing_time and _ages(name.strip()))


def _ages(name: str) -> bool:
    """Whether `name` is a fault kind whose level is its age (`Fault.time_name`)."""
    cls = FAULT_KINDS.get(name)
    return cls is not None and cls.time_name is not None and cls.time_name == cls.level_name


def _parse_layers(text: str) -> Scope:
    """Scope of a ``layers=`` modifier: one FRACTION, or layer names separated by commas."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ConfigError(f"empty layer name in 'layers={text}'.")
    if len(items) == 1 and _NUMBER.fullmatch(items[0]) and not _INTEGER.fullmatch(items[0]):
        return Scope(fraction=float(items[0]))
    return Scope(layers=tuple(items))


def _parse_table(table: object) -> tuple[Fault, ...]:
    """Faults of one ``[[fault]]`` table of a TOML file."""
    if not isinstance(table, dict):
        raise ConfigError("a [[fault]] entry must be a table.")
    params = dict(table)
    name = params.pop("kind", None)
    if not isinstance(name, str):
        raise ConfigError(f"'kind' must be a fault kind or preset name; got {name!r}.")
    layers = params.pop("layers", None)
    if layers is None:
        scope = Scope()
    elif isinstance(layers, (int, float)) and not isinstance(layers, bool):
        scope = Scope(fraction=float(layers))
    elif isinstance(layers, list) and all(isinstance(n, str) for n in layers):
        scope = Scope(layers=tuple(layers))
    else:
        raise ConfigError(f"'layers' must be a fraction or a list of layer names; got {layers!r}.")
    per_read = params.pop("per_read", False)
    if not isinstance(per_read, bool):
        raise ConfigError(f"'per_read' must be true or false; got {per_read!r}.")
    return _build(name, params, scope, per_read, False, typed=True)


def _build(
    name: str,
    params: dict[str, object],
    scope: Scope,
    per_read: bool,
    allow_missing_level: bool,
    *,
    typed: bool = False,
) -> tuple[Fault, ...]:
    """Faults named `name` (kind or preset) with `params` (spec keys → spec text, or TOML
    values when `typed`)."""
    if name in FAULT_KINDS:
        cls = FAULT_KINDS[name]
        values = _values(name, cls, params, typed)
        if cls.level_name not in values:
            if not allow_missing_level:
                key = next(k for k, f in cls._fields_by_key().items() if f.name == cls.level_name)
                raise ConfigError(f"fault '{name}' needs its level '{key}'.")
            values[cls.level_name] = 0.0
        return (cls(**values, scope=scope, per_read=per_read),)
    if name in PRESETS:
        preset = PRESETS[name].faults
        if params and len(preset) != 1:
            raise ConfigError(f"preset '{name}' holds {len(preset)} faults; it takes no keys.")
        return tuple(
            dataclasses.replace(
                fault, **_values(name, type(fault), params, typed), scope=scope,
                per_read=per_read
            )
            for fault in preset
        )
    raise ConfigError(
        f"unknown fault {name!r}; fault kinds: {', '.join(FAULT_KINDS)}; "
        f"presets: {', '.join(PRESETS)}."
    )


def _values(
    name: str, cls: type[Fault], params: dict[str, object], typed: bool
) -> dict[str, object]:
    """`params` (spec key → spec text, or TOML values when `typed`) as values by field name."""
    fields = cls._fields_by_key()
    unknown = [key for key in params if key not in fields]
    if unknown:
        raise ConfigError(
            f"unknown key {', '.join(map(repr, unknown))} for '{name}'; "
            f"its keys: {', '.join(fields)}."
        )
    return {fields[key].name: _value(cls, fields[key], key, raw, typed)
            for key, raw in params.items()}


def _value(cls: type[Fault], field: dataclasses.Field, key: str, raw: object,
           typed: bool) -> object:
    """`raw` (spec text, or a TOML value when `typed`) converted to the type of `field`: a
    number, or a word of a choice field (a string `enum.Enum`)."""
    hint = typing.get_type_hints(cls)[field.name]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        words = [member.value for member in hint]
        if isinstance(raw, str) and raw in words:
            return hint(raw)
        raise ConfigError(f"'{key}' must be one of {', '.join(words)}; got {raw!r}.")
    integer = int in (hint, *typing.get_args(hint))
    if isinstance(raw, str) and not typed:
        pattern = _INTEGER if integer else _NUMBER
        if pattern.fullmatch(raw):
            return int(raw) if integer else float(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        return raw if integer else float(raw)
    elif isinstance(raw, float) and not integer:
        return raw
    expected = "an integer" if integer else "a number"
    raise ConfigError(f"'{key}' must be {expected}; got {raw!r}.")
