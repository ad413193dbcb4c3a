"""``{{param}}`` placeholders in a ``shell:`` script (gantz.yaml style), made into quoted variables.

A script stays fixed text and parameters never reach the shell parser: at import,
each placeholder becomes a double-quoted reference to the parameter's environment
variable, so ``psql mydb < {{file}}`` becomes ``psql mydb < "$PARAM_FILE"``
(inside double quotes, ``${PARAM_FILE}``). Where quoting cannot make a value safe,
the script is refused with a message saying how to write it instead:

* inside single quotes (the shell would not expand the variable);
* inside ``$(...)`` or backticks (a second round of parsing);
* as a command name (a parameter would choose the program).
"""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ANY_BRACES = re.compile(r"\{\{.*?\}\}")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# After these (unquoted) the next word is a command name.
_COMMAND_SEPARATORS = frozenset(";&|\n(")
_KEYWORDS = frozenset({"then", "do", "else", "elif", "if", "while", "until", "!", "{", "time"})


class PlaceholderError(ValueError):
    """A placeholder that quoting cannot make safe, or that names no parameter."""


def variable(name: str) -> str:
    """The environment variable the shell kind sets for parameter ``name``."""
    return "PARAM_" + re.sub(r"[^A-Z0-9_]", "_", name.upper())


def has_placeholders(script: str) -> bool:
    return "{{" in script


def convert(script: str, params: set[str] | None = None) -> str:
    """The script with every ``{{param}}`` a quoted variable; PlaceholderError when unsafe.

    One pass over the text keeps the quoting context: unquoted, in double quotes or
    in single quotes; the depth of command substitutions (``$(``, backticks); and
    whether the current word stands where a command name goes.
    """
    out: list[str] = []
    i, n = 0, len(script)
    quote = ""  # "", '"' or "'"
    depth, backtick = 0, False
    command_start, word = True, ""
    while i < n:
        if script.startswith("{{", i):
            match = _PLACEHOLDER.match(script, i)
            if match is None:
                bad = _ANY_BRACES.match(script, i)
                shown = bad.group(0) if bad else script[i : i + 20]
                raise PlaceholderError(f"{shown!r} is not a placeholder: write {{{{name}}}}")
            name = match.group(1)
            nested = depth > 0 or backtick
            _check(name, params, quote, nested, command_start and not word and not quote)
            ref = variable(name)
            out.append(f"${{{ref}}}" if quote == '"' else f'"${ref}"')
            word += "x"
            i = match.end()
            continue
        char = script[i]
        out.append(char)
        i += 1
        if quote == "'":
            quote = "" if char == "'" else quote
            continue
        if char == "\\" and i < n:
            out.append(script[i])
            i += 1
            word += "x"
        elif char == "`":
            backtick = not backtick
            command_start, word = backtick, ""
        elif char == "$" and script.startswith("(", i):
            out.append("(")
            i += 1
            depth += 1
            command_start, word = True, ""
        elif char == ")" and depth:
            depth -= 1
            word += "x"
        elif quote == '"':
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
            word += "x"
        elif char in " \t":
            if word:
                keeps = bool(_ASSIGNMENT.match(word)) or word in _KEYWORDS
                command_start = command_start and keeps
            word = ""
        elif char in _COMMAND_SEPARATORS:
            command_start, word = True, ""
        elif char == "#" and not word:
            end = script.find("\n", i)
            end = n if end < 0 else end
            out.append(script[i:end])
            i = end
        else:
            word += char
    return "".join(out)


def _check(name: str, params: set[str] | None, quote: str, nested: int, command: bool) -> None:
    ref = variable(name)
    if params is not None and name not in params:
        raise PlaceholderError(f"{{{{{name}}}}} is not a parameter of this tool")
    if quote == "'":
        raise PlaceholderError(
            f"{{{{{name}}}}} is inside single quotes, where the shell expands nothing: close the "
            f"quotes around it, e.g. 'text '{{{{{name}}}}}' more'"
        )
    if nested:
        raise PlaceholderError(
            f"{{{{{name}}}}} is inside $(...) or backticks, which the shell parses again: "
            f'write "${ref}" there yourself, or pass the value as an argument of an argv tool'
        )
    if command:
        raise PlaceholderError(
            f"{{{{{name}}}}} is in the place of a command name, so a parameter would choose the "
            f"program: name the program in the script and pass {{{{{name}}}}} as its argument"
        )
