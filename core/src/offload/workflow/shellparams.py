"""``${...}`` in an ``sh>`` script, when the value came from a task's output.

Digdag pastes every param into the script as raw text. For params the workflow's
author wrote (the file, ``-p``, the session) offload does the same: an author may put
shell syntax in them on purpose. A value a *task* produced (``store_params``,
``export_params``, ``${error.*}``) is data, and pasting it would let one task's output
run commands in the next one. Such a value is passed instead through an environment
variable of its own, ``OFFLOAD_PARAM_<n>``, and the script refers to it as
``${OFFLOAD_PARAM_<n>}``: the shell expands a variable without parsing its value
again, so unquoted, in double quotes or in a here-document, the value arrives as text
and never as code. Inside single quotes, where the shell expands nothing, the value is
pasted with its single quotes escaped (``'\\''``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from offload.workflow.params import REFERENCE, lookup, render_value

VARIABLE_PREFIX = "OFFLOAD_PARAM_"


class _QuoteState:
    """Where a POSIX shell is, quote-wise, as the script is read left to right."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.position = 0
        self.single = False
        self.double = False

    def single_quoted_at(self, end: int) -> bool:
        """Whether ``end`` lies inside single quotes."""
        i, script = self.position, self.script
        while i < end:
            char = script[i]
            if self.single:
                self.single = char != "'"
            elif char == "\\":
                i += 1
            elif char == '"':
                self.double = not self.double
            elif char == "'" and not self.double:
                self.single = True
            i += 1
        self.position = max(i, end)
        return self.single


def render_script(script: str, params: Mapping[str, Any], from_tasks: Collection[str]) -> tuple[str, dict[str, str]]:
    """``script`` with its ``${...}`` replaced, and the variables that carry task outputs.

    :param from_tasks: the top-level param names whose values tasks produced.
    """
    out: list[str] = []
    env: dict[str, str] = {}
    position, quotes = 0, _QuoteState(script)
    for match in REFERENCE.finditer(script):
        single = quotes.single_quoted_at(match.start())
        out.append(script[position : match.start()])
        position = match.end()
        expression = match.group(1)
        value = render_value(lookup(params, expression))
        if expression.strip().split(".", 1)[0] not in from_tasks:
            out.append(value)
        elif single:
            out.append(value.replace("'", "'\\''"))
        else:
            variable = f"{VARIABLE_PREFIX}{len(env)}"
            env[variable] = value
            out.append("${" + variable + "}")
    out.append(script[position:])
    return "".join(out), env
