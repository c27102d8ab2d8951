"""What `make messages` reads from a Python file (babel.cfg names it): Babel's own messages — `_()`,
`N_()`, `ngettext()` — and the command line's help, where typer takes it from, without a wrapper:

- the docstring of a function decorated as a command or callback (`@app.command(...)`), which typer makes
  the command's help (cleaned as `inspect.getdoc` cleans it);
- a plain string given as `help=` to any call (`typer.Option`, `typer.Argument`, `typer.Typer`, a command).

eduedge/agent/cli/_lang.py translates those on the command objects at run time, so the commands are written
as typer expects them. A help put together at run time (an f-string) is not found; write it whole.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Collection, Iterator, Mapping
from typing import IO, Any


def extract(fileobj: IO[bytes], keywords: Mapping[str, Any], comment_tags: Collection[str],
            options: dict[str, Any]) -> Iterator[tuple[int, str, str, list[str]]]:
    """A Babel extraction method: (line, function, message, comments) for each message of the file."""
    from babel.messages.extract import extract_python  # Babel is a tool of the checkout, not of the box

    yield from extract_python(fileobj, keywords, comment_tags, options)
    fileobj.seek(0)
    source = fileobj.read().decode(options.get("encoding", "utf-8"))
    for line, text in help_texts(ast.parse(source)):
        yield line, "N_", text, []      # as though marked N_: translated where it is shown


def help_texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every command docstring and every literal `help=` in `tree`.

    >>> list(help_texts(ast.parse('@app.command("x")\\ndef x(n=typer.Option(1, help="how many")):\\n'
    ...                           '    \\"\\"\\"Do x.\\n\\n    Twice.\\"\\"\\"')))
    [(2, 'Do x.\\n\\nTwice.'), (2, 'how many')]
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in ("command", "callback")
                for d in node.decorator_list):
            doc = ast.get_docstring(node, clean=False)
            if doc and not _has_help(node):
                yield node.lineno, inspect.cleandoc(doc)
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "help" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    yield kw.value.lineno, kw.value.value


def _has_help(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A command given `help=` shows that, not its docstring."""
    return any(isinstance(d, ast.Call) and any(k.arg == "help" for k in d.keywords) for d in node.decorator_list)
