"""A griffe extension for the API reference: rnnkit's docstrings are plain text read by
``help()`` and doctest, with a few reStructuredText habits that Markdown would garble. Before
mkdocstrings renders one, this

- turns Sphinx roles (``:func:`clip_grad_norm```, ``:mod:`~rnnkit.engine.cells```) into
  inline code (``~`` keeps the last part);
- fences each run of doctest lines (``>>>``, ``...`` and the expected output) as ``pycon``
  code, where Markdown would read ``>`` as a quote and ``[1, 2]`` as a link;
- ends a paragraph that introduces a literal block (``::``) with one colon.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|obj|exc):`(~?)([^`]+)`")


def plain(text: str) -> str:
    """``:func:`~a.b.c``` -> ```c```, ``:mod:`a.b``` -> ```a.b```."""
    return ROLE.sub(lambda m: f"`{m[2].rpartition('.')[2] if m[1] else m[2]}`", text)


def fence_doctests(text: str) -> str:
    """Wrap every run of doctest lines in a fenced ``pycon`` block at its indentation."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not (stripped.startswith(">>> ") or stripped == ">>>"):
            out.append(line[:-2] + ":" if line.endswith("::") and line.strip() != "::" else line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        if out and out[-1].strip():
            out.append("")
        out.append(indent + "```pycon")
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            out.append(lines[i])
            i += 1
        out += [indent + "```", ""]
    return "\n".join(out)


def markdown(text: str) -> str:
    return fence_doctests(plain(text))


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
