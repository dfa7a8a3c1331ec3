"""A small parser driven by the flag table in :mod:`nanobragg.cli.flags`.

Flags match exactly (C matches substrings, so that ``-twotheta_axis`` also
sets ``-twotheta``; that is not copied). A token that parses as a number is
a value, never a flag, so ``-detector_roty -4`` works. A flag with a
``word`` takes that word alone instead of its values (``-misset random`` or
three angles); flags are applied by ``stage`` first (``-mask``, then
``-img``, before every other flag, as C reads them), then in the order given.
"""
from __future__ import annotations

from ..errors import UsageError
from .flags import BY_NAME, Flag
from .settings import Settings
from .suggest import is_value, not_a_flag

__all__ = ["UsageError", "apply_flag", "in_stages", "parse", "split_flags"]  # UsageError: nanobragg.errors


def split_flags(argv: list[str], table: dict | None = None) -> list[tuple[Flag, str, list[str]]]:
    """Group argv into (flag, name as given, raw values), checking names and arity.

    ``table`` maps flag names to :class:`Flag` (default: nanoBragg's, ``flags.BY_NAME``).
    """
    by_name = BY_NAME if table is None else table
    out, i = [], 0
    while i < len(argv):
        name = argv[i]
        flag = by_name.get(name)
        if flag is None:
            raise UsageError(not_a_flag(name, by_name, out[-1] if out else None))
        count = len(flag.values)
        word = getattr(flag, "word", None)
        if word is not None and i + 1 < len(argv) and argv[i + 1].startswith(word):
            count = 1
        values = argv[i + 1:i + 1 + count]
        if len(values) < count or not all(is_value(v) for v in values):
            raise UsageError(f"{name} needs {count} value{'s' if count > 1 else ''}")
        out.append((flag, name, values))
        i += 1 + count
    return out


def apply_flag(settings: Settings, flag: Flag, name: str, values: list[str]) -> None:
    """Convert the values and apply the flag's assignments, implications or action.

    Every field set is recorded in ``settings.origins`` as set by ``name`` (when the
    settings record origins, as :class:`Settings` does), so that a later check of
    the value names this flag.
    """
    track = hasattr(settings, "source")
    if track:
        settings.source = name
    try:
        converters = flag.values if len(flag.values) == len(values) else flag.values[:1] * len(values)
        converted = [conv(v) for conv, v in zip(converters, values)]
        if flag.action is not None:
            flag.action(settings, converted)
        elif flag.target is not None:
            value = converted[0] if len(converted) == 1 else tuple(converted)
            for target in (flag.target if isinstance(flag.target, tuple) else (flag.target,)):
                settings.assign(target, value)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None
    for target, value in flag.implies:
        settings.assign(target, value)
    if track:
        settings.source = None


def in_stages(groups: list) -> list:
    """The groups of :func:`split_flags` in the order they are applied: by the flag's stage, then as given."""
    return sorted(groups, key=lambda group: getattr(group[0], "stage", 0))


def parse(argv: list[str], settings: Settings | None = None) -> Settings:
    """Parse argv (without the program name) into :class:`Settings`, flags applied by stage, then in order."""
    settings = settings or Settings()
    for flag, name, values in in_stages(split_flags(argv)):
        apply_flag(settings, flag, name, values)
    return settings
