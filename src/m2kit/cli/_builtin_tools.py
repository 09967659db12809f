"""The tools `m2 ask -T` offers: read a file, list a folder, run Python.

Their docstrings are what the model reads. read_file and list_dir see only the current directory
tree; run_python runs in a separate, isolated interpreter (`python -I`) under a time limit, and
`m2 ask` asks before each run unless --yes. Importing this module imports pydantic.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._tools import tool

if TYPE_CHECKING:
    from .._tools import Tool

#: The most characters a tool hands back; the model pays for every one of them.
MAX_OUTPUT = 20_000
#: Seconds a run_python call may take before its process is killed.
RUN_TIMEOUT = 30.0

#: What ends a cut output, so the model knows that there was more.
CUT = "… (cut)"
# A NUL byte in the first block is how `grep` and `git` tell a binary file too.
_SNIFF = 8192


def capped(text: str, limit: int = MAX_OUTPUT) -> str:
    """`text`, or its first `limit` characters followed by "… (cut)"."""
    return text if len(text) <= limit else text[:limit] + CUT


def inside_cwd(path: str) -> Path:
    """`path` resolved, when it lies in the current directory tree; else PermissionError.

    Links are followed first, so a link that points out of the tree is refused too.
    """
    root = Path.cwd().resolve()
    target = (root / Path(path).expanduser()).resolve()
    if target != root and root not in target.parents:
        raise PermissionError(
            f"{path} is outside the current directory ({root}); only paths inside it can be read"
        )
    return target


@tool
def read_file(path: str, start_line: int = 1, max_lines: int = 400) -> str:
    """Read a text file in the current directory tree; its lines come back numbered.

    Long files come in parts: when more lines follow, the last line says which start_line to
    ask for next. Output beyond 20,000 characters is cut.

    Args:
        path: The file's path, relative to the current directory.
        start_line: The number of the first line to return, counting from 1.
        max_lines: The most lines to return.
    """
    if start_line < 1 or max_lines < 1:
        raise ValueError("start_line and max_lines must be 1 or more")
    target = inside_cwd(path)
    if target.is_dir():
        raise IsADirectoryError(f"{path} is a directory: use list_dir to see what it holds")
    with target.open("rb") as file:
        if b"\0" in file.read(_SNIFF):
            raise ValueError(f"{path} is a binary file, not text")

    lines: list[str] = []
    more = False
    with target.open(encoding="utf-8", errors="replace") as file:
        for number, line in enumerate(file, start=1):
            if number < start_line:
                continue
            if len(lines) == max_lines:
                more = True
                break
            text = line.removesuffix("\n")
            lines.append(f"{number:>6}\t{text}")

    if not lines:
        return f"({path} has fewer than {start_line} lines)" if start_line > 1 else "(empty file)"
    if more:
        lines.append(f"… (more lines follow: read again with start_line={start_line + max_lines})")
    return capped("\n".join(lines))


@tool
def list_dir(path: str = ".") -> str:
    """List a folder in the current directory tree: one entry a line, folders ending in "/",
    files followed by their size in bytes. Output beyond 20,000 characters is cut.

    Args:
        path: The folder, relative to the current directory; "." is the current directory.
    """
    target = inside_cwd(path)
    if not target.is_dir():
        raise NotADirectoryError(f"{path} is not a folder: use read_file to read a file")

    entries = []
    for entry in sorted(target.iterdir(), key=lambda found: found.name):
        if entry.is_dir():
            entries.append(f"{entry.name}/")
        else:
            try:
                entries.append(f"{entry.name}  ({entry.stat().st_size} bytes)")
            except OSError:  # a broken link
                entries.append(entry.name)
    return capped("\n".join(entries)) if entries else "(empty folder)"


@tool
def run_python(code: str) -> str:
    """Run Python code in a fresh interpreter, in the current directory, and return its exit
    code, standard output and standard error. Print what you want to see.

    The interpreter is isolated: no user site-packages, no PYTHON* variables, and the current
    directory is not on sys.path. It is stopped after 30 seconds. Output beyond 20,000
    characters is cut.

    Args:
        code: A complete Python program.
    """
    return run_code(code, timeout=RUN_TIMEOUT)


# run_python's processes still running, to stop when m2 ends.
_RUNNING: set[subprocess.Popen[str]] = set()
_RUNNING_LOCK = threading.Lock()


def run_code(code: str, *, timeout: float) -> str:
    """What run_python does, with the time limit in seconds given."""
    # A session of its own, so that a timeout kills whatever the code started as well.
    with subprocess.Popen(
        [sys.executable, "-I", "-c", code],
        cwd=os.getcwd(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
        start_new_session=sys.platform != "win32",
    ) as process:
        with _RUNNING_LOCK:
            _RUNNING.add(process)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            message = f"the code did not finish within {timeout:g} s and was stopped"
            raise TimeoutError(message) from None
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(process)

    half = MAX_OUTPUT // 2
    return "\n".join(
        [
            f"exit code: {process.returncode}",
            "stdout:",
            capped(out, half) if out else "(nothing)",
            "stderr:",
            capped(err, half) if err else "(nothing)",
        ]
    )


def stop_running() -> None:
    """Stop run_python's code still running: at Ctrl-C, and when m2 ends. In a session of its
    own, Ctrl-C does not reach it, and the thread that waits for it dies with m2."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        _kill(process)


atexit.register(stop_running)


def _kill(process: subprocess.Popen[str]) -> None:
    # Popen's exit then only waits: a grandchild that kept the pipes open cannot hold m2 up.
    if sys.platform == "win32":
        process.kill()
    else:
        with contextlib.suppress(ProcessLookupError):  # it ended just now
            os.killpg(process.pid, signal.SIGKILL)


BUILTINS: dict[str, Tool[..., Any]] = {
    found.name: found for found in (read_file, list_dir, run_python)
}
