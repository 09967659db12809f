"""What every `m2` command's output shares: the standard streams, exit codes, error lines, JSON
and rich tables.

Answers and data go to standard output, everything meant for the person to standard error.
Styles show only on a terminal, and not with NO_COLOR or TERM=dumb. rich is imported inside the
functions that draw with it, so a command that prints plain text never loads it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, TextIO

from .._errors import ConfigError, M2Error

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

DIM = "\x1b[2m"
RESET = "\x1b[0m"
CLEAR_LINE = "\r\x1b[K"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:
        return False


def color(stream: TextIO) -> bool:
    """Whether `stream` may be styled: a terminal, with no NO_COLOR and a TERM other than dumb."""
    # no-color.org: only a non-empty NO_COLOR counts.
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def say(message: str, *, dim: bool = False) -> None:
    """One line for the person, on standard error."""
    if dim and color(sys.stderr):
        message = f"{DIM}{message}{RESET}"
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


def line_start() -> str:
    """What puts stderr's cursor at the start of a clean line after the terminal echoed `^C`."""
    if not is_terminal(sys.stderr):
        return ""
    return "\n" if os.environ.get("TERM") == "dumb" else CLEAR_LINE


def clean_text(text: str) -> str:
    """Command-line text with any bytes that were not UTF-8 (surrogate escapes) made U+FFFD."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def clean_values(values: dict[str, object]) -> None:
    """Apply `clean_text` to every string among a command's parameters, in place."""
    for name, value in values.items():
        if isinstance(value, str):
            values[name] = clean_text(value)


def error_line(error: M2Error) -> str:
    """The one line m2 prints for `error`: its message, how the retries went, and its hint."""
    line = f"m2: error: {error}"
    if error.retry_summary:
        line += f" ({error.retry_summary})"
    if error.hint:
        line += f" {error.hint}" if line.endswith((".", "?", "!")) else f". {error.hint}"
    return line


def failed(error: M2Error) -> int:
    """Say `error` in one line; returns its exit code (EXIT_USAGE for a ConfigError)."""
    say(error_line(error))
    return EXIT_USAGE if isinstance(error, ConfigError) else EXIT_FAILURE


def interrupted(*, clean_line: bool = False) -> int:
    """Say that Ctrl-C stopped m2, with `clean_line` on a line of its own (see `line_start`)."""
    say(f"{line_start() if clean_line else ''}m2: interrupted")
    return EXIT_INTERRUPTED


def broken_pipe() -> int:
    """Stop quietly when the reader went away (`m2 … | head`), as other Unix tools do."""
    # Whatever is still buffered, flushed at exit, then goes nowhere instead of raising again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def guarded(work: Callable[[], int | None], *, clean_line: bool = False) -> int:
    """`work()`'s exit code (EXIT_OK when it returns None), with library errors, Ctrl-C and a
    closed pipe made one quiet line; `clean_line` is passed to `interrupted`."""
    try:
        code = work()
    except KeyboardInterrupt:
        return interrupted(clean_line=clean_line)
    except BrokenPipeError:
        return broken_pipe()
    except M2Error as error:
        return failed(error)
    return EXIT_OK if code is None else code


def write(text: str) -> None:
    """`text` on standard output, flushed."""
    sys.stdout.write(text)
    sys.stdout.flush()


def write_json(data: object) -> None:
    """`data` on standard output as indented JSON, with non-ASCII characters kept as they are."""
    write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def stdout_console() -> Console:
    """A rich console on stdout, styled only where `color` allows (rich's own NO_COLOR handling
    would keep bold and dim; no-color.org asks for plain text). No markup parsing: model ids,
    prompts and config values are data."""
    from rich.console import Console

    return Console(
        color_system="auto" if color(sys.stdout) else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
    )


def show(*renderables: RenderableType) -> None:
    """Print to stdout; piped output gets its natural width, so no row is ever wrapped."""
    from rich.console import Group
    from rich.measure import Measurement

    console = stdout_console()
    group = Group(*renderables)
    if is_terminal(sys.stdout):
        console.print(group)
        return

    options = console.options.update(width=10_000)
    console.width = Measurement.get(console, options, group).maximum
    with console.capture() as captured:
        console.print(group)
    # rich pads every line to the width; a file or a pipe is better off without the spaces.
    write("".join(f"{line.rstrip()}\n" for line in captured.get().splitlines()))


def new_table() -> Table:
    """A table with a rule under its header, two spaces between columns and none at the edges,
    so the nine columns of a provider table fit in 80."""
    from rich import box
    from rich.table import Table

    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))


def line_table(
    out: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str | Text]],
    *,
    flexible: str,
    right: Collection[str] = (),
) -> Table:
    """A `new_table` of one line per row, as wide as `out`: the `flexible` column takes the width
    the others leave and is cut with an ellipsis; the others keep their full width."""
    from rich.cells import cell_len

    widths = [
        max([cell_len(header)] + [cell_len(str(row[at])) for row in rows])
        for at, header in enumerate(headers)
    ]
    # new_table puts two spaces between columns and none at the edges.
    others = sum(width for header, width in zip(headers, widths, strict=True) if header != flexible)
    room = max(out.width - others - 2 * (len(headers) - 1), cell_len(flexible))

    shown = new_table()
    for header in headers:
        shown.add_column(
            header,
            justify="right" if header in right else "left",
            no_wrap=True,
            overflow="ellipsis",
            max_width=room if header == flexible else None,
            style="cyan" if header == "ID" else None,
        )
    for row in rows:
        shown.add_row(*row)
    return shown
