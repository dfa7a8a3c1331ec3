"""One-line messages for a word the flag table does not know: what the user probably meant.

The C programs test each word against substrings (``strstr``) and skip, without
a word, both a spelling they do not know and any word that does not start with
``-``. Their own documents rely on that: the spellings they act on are
synonyms in the tables (``-matrix`` for ``-mat``); the spellings they ignore
are refused here, and the message says why and what was probably meant.

* an unknown flag: ``unknown flag -hdiv (...); did you mean -hdivrange?`` --
  from :data:`C_IGNORES` for the spellings of C's documents that C ignores,
  otherwise the closest names of the table (:mod:`difflib`);
* a value no flag takes: after a flag that takes none, the message says so
  (C skips the word, so ``-oversample_thick 0`` turns the option *on*);
  after a flag with values, how many it takes.

Nothing here imports the parser; :func:`not_a_flag` is given the table.
"""
from __future__ import annotations

import difflib

#: Spellings in nanoBragg.c's comment, its usage text or the upstream README that the C
#: program reads as no flag at all (it skips them and the numbers after them):
#: name -> (the flag probably meant; why C ignores it; the advice, if not "did you mean <flag>?").
C_IGNORES = {
    "-hdiv": ("-hdivrange", "the C program ignores it and its value"),
    "-vdiv": ("-vdivrange", "the C program ignores it and its value"),
    "-dispstep": ("-dispsteps", "the C program ignores it and its value"),
    "-detsize_x": ("-detsize_f", "nanoBragg.c ignores it and its value; only nonBragg reads it"),
    "-detsize_y": ("-detsize_s", "nanoBragg.c ignores it and its value; only nonBragg reads it"),
    "-xdet_vector": ("-fdet_vector", "the C program ignores it and its values"),
    "-ydet_vector": ("-sdet_vector", "the C program ignores it and its values"),
    "-zdet_vector": ("-odet_vector", "the C program ignores it and its values"),
    "-source_distance": ("-sourcefile", "nanoBragg.c ignores it and its value: its parsing is commented out; "
                                        "only nonBragg reads it", "to place the sources, use -sourcefile"),
}


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def is_value(token: str) -> bool:
    """A word the parser reads as a value: not starting with ``-``, or a number."""
    return not token.startswith("-") or _is_number(token)


def _or_list(names: list) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def closest(name: str, names) -> list:
    """Up to three flag names of ``names`` closest to ``name`` (always at least one, if any exist).

    A name differing only in case comes first; then the names ``name`` begins
    (``-dist`` -> ``-distance``), shortest first, and :func:`difflib.get_close_matches`
    on lower case; failing both, the longest name contained in ``name`` (the flag the
    C program's substring test would have taken), else the single closest name.
    """
    names = sorted(names)
    lower = {}
    for n in names:
        lower.setdefault(n.lower(), []).append(n)
    key = name.lower()
    if key in lower and name not in names:
        return lower[key][:3]
    starts = sorted((n for n in lower if n.startswith(key) and len(key) > 2), key=len)
    found = list(dict.fromkeys(starts + difflib.get_close_matches(key, list(lower), n=3, cutoff=0.6)))[:3]
    if not found:
        inside = [n for n in lower if len(n) > 2 and n in key]
        found = sorted(inside, key=len, reverse=True)[:1]
    if not found:
        found = difflib.get_close_matches(key, list(lower), n=1, cutoff=0.0)
    return [lower[f][0] for f in found]


def unknown_flag(name: str, table: dict) -> str:
    """``unknown flag NAME``, why C ignores it where it does, and the flag probably meant."""
    meant, why, *advice = C_IGNORES.get(name, (None, None))
    if meant in table:
        return f"unknown flag {name} ({why}); {advice[0] if advice else f'did you mean {meant}?'}"
    candidates = closest(name, table)
    if not candidates:
        return f"unknown flag {name}"
    return f"unknown flag {name}; did you mean {_or_list(candidates)}?"


def stray_value(token: str, previous=None) -> str:
    """A value no flag takes; ``previous`` is the (flag, name, values) group before it, if any."""
    if previous is None:
        return f"unexpected value '{token}' (no flag takes it)"
    _, name, values = previous
    if not values:
        return (f"{name} takes no value, but '{token}' follows it "
                f"(the C program skips '{token}' and applies {name} all the same)")
    count = len(values)
    return f"unexpected value '{token}': {name} takes {count} value{'s' if count > 1 else ''}"


def not_a_flag(token: str, table: dict, previous=None) -> str:
    """The message for a word of argv that is not in ``table``: a stray value or an unknown flag."""
    return stray_value(token, previous) if is_value(token) else unknown_flag(token, table)
