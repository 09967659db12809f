"""The tools `m2 ask -T` offers: read a file, list a folder, run Python.

Their docstrings are what the model reads. read_file and list_dir see only the current directory
tree; run_python runs in a separate, isolated interpreter (`python -I`) under a time limit, and
`m2 ask` asks before each run unless --yes. Whatever a file or a program holds, a tool keeps no
more of it in memory than it hands back. Importing this module imports pydantic.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import io
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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
# How much is read at a time from a line being skipped, or from run_python's output.
_CHUNK = 65536


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

    Long files come in parts of at most max_lines lines and 20,000 characters: when more
    follows, the last line says which start_line to ask for next. A line longer than 20,000
    characters is cut.

    Args:
        path: The file's path, relative to the current directory.
        start_line: The number of the first line to return, counting from 1.
        max_lines: The most lines to return.
    """
    if start_line < 1 or max_lines < 1:
        raise ValueError("start_line and max_lines must be 1 or more")
    target = inside_cwd(path)

    with _open_text(target, path) as file:
        for _ in range(start_line - 1):
            if not _skip_line(file):
                break
        lines, note = _take_lines(file, start_line, max_lines)

    if not lines:
        return f"({path} has fewer than {start_line} lines)" if start_line > 1 else "(empty file)"
    return "\n".join([*lines, note] if note else lines)


def _open_text(target: Path, path: str) -> IO[str]:
    """`target` open as UTF-8 text, once it is known to be a regular file, and not a binary one."""
    _check_regular(target.stat().st_mode, path)

    # O_NONBLOCK, so that a FIFO put in the file's place since the check cannot block the open
    # either; reading a regular file ignores it. O_BINARY: Windows reads ^Z as the end otherwise.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(target, flags)
    binary = os.fdopen(descriptor, "rb")
    try:
        _check_regular(os.fstat(descriptor).st_mode, path)
        if b"\0" in binary.read(_SNIFF):
            raise ValueError(f"{path} is a binary file, not text")
        binary.seek(0)
    except BaseException:
        binary.close()
        raise
    return io.TextIOWrapper(binary, encoding="utf-8", errors="replace")


def _check_regular(mode: int, path: str) -> None:
    """Refuse a folder, and what is not a file: opening a FIFO or a device can wait forever."""
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a directory: use list_dir to see what it holds")
    if not stat.S_ISREG(mode):
        message = f"{path} is {_kind(mode)}, not a regular file: read_file reads only those"
        raise ValueError(message)


def _kind(mode: int) -> str:
    """What a path that is neither a folder nor a regular file is, in a few words."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _skip_line(file: IO[str]) -> bool:
    """Read past one line, a chunk at a time however long it is; False at the end of the file."""
    part = file.readline(_CHUNK)
    if not part:
        return False
    while not part.endswith("\n") and (part := file.readline(_CHUNK)):
        pass
    return True


def _take_lines(file: IO[str], first: int, max_lines: int) -> tuple[list[str], str]:
    """Up to `max_lines` numbered lines, together within MAX_OUTPUT characters, and the note
    that says where to read on ("" when the file ends there)."""
    lines: list[str] = []
    size = 0
    for number in range(first, first + max_lines):
        prefix = f"{number:>6}\t"
        room = MAX_OUTPUT - size - len(prefix)
        # One character more than fits, which tells a line that fits from one that does not.
        line = file.readline(max(room, 0) + 1)
        if not line:
            return lines, ""
        text = line.removesuffix("\n")

        if len(text) > room and lines:
            return lines, f"… (cut at {MAX_OUTPUT:,} characters: {_read_on(number)})"
        if len(text) > room:
            lines.append(prefix + text[:room] + CUT)
            long = f"line {number} is longer than {MAX_OUTPUT:,} characters"
            if _skip_line(file) and file.read(1):
                return lines, f"… ({long}: {_read_on(number + 1)})"
            return lines, f"… ({long}; the file ends after it)"

        lines.append(prefix + text)
        size += len(prefix) + len(text) + 1

    if file.read(1):
        return lines, f"… (more lines follow: {_read_on(first + max_lines)})"
    return lines, ""


def _read_on(number: int) -> str:
    return f"read again with start_line={number}"


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

    entries = [_entry(found) for found in sorted(target.iterdir(), key=lambda found: found.name)]
    return capped("\n".join(entries)) if entries else "(empty folder)"


def _entry(entry: Path) -> str:
    """One line of list_dir. A FIFO or a device says what it is, not its size: read_file
    refuses it."""
    try:
        found = entry.stat()
    except OSError:  # a broken link
        return entry.name
    if stat.S_ISDIR(found.st_mode):
        return f"{entry.name}/"
    if stat.S_ISREG(found.st_mode):
        return f"{entry.name}  ({found.st_size} bytes)"
    return f"{entry.name}  ({_kind(found.st_mode)})"


@tool
def run_python(code: str) -> str:
    """Run Python code in a fresh interpreter, in the current directory, and return its exit
    code, standard output and standard error. Print what you want to see.

    The interpreter is isolated: no user site-packages, no PYTHON* variables, and the current
    directory is not on sys.path. It is stopped after 30 seconds. Output beyond 10,000
    characters on each of standard output and standard error is cut.

    Args:
        code: A complete Python program.
    """
    return run_code(code, timeout=RUN_TIMEOUT)


# run_python's processes still running, to stop when m2 ends.
_RUNNING: set[subprocess.Popen[bytes]] = set()
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
        start_new_session=sys.platform != "win32",
    ) as process:
        with _RUNNING_LOCK:
            _RUNNING.add(process)
        try:
            out, err = _drain(process, timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            message = f"the code did not finish within {timeout:g} s and was stopped"
            raise TimeoutError(message) from None
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(process)

    return "\n".join(
        [
            f"exit code: {process.returncode}",
            "stdout:",
            out.text() or "(nothing)",
            "stderr:",
            err.text() or "(nothing)",
        ]
    )


class _Output:
    """One of run_python's outputs: its first `limit` characters, and how many more it had."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        self._pipe = pipe
        self._limit = limit
        self._kept: list[str] = []
        self._size = 0
        self._cut = 0

    def drain(self) -> None:
        """Read the pipe to its end and close it; what does not fit is counted, then dropped."""
        # Text the way Popen's text mode decodes it: UTF-8, "\r\n" read as "\n".
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        decoder = io.IncrementalNewlineDecoder(utf8, translate=True)
        with self._pipe:
            while chunk := os.read(self._pipe.fileno(), _CHUNK):
                self._keep(decoder.decode(chunk))
            self._keep(decoder.decode(b"", final=True))

    def _keep(self, text: str) -> None:
        room = max(self._limit - self._size, 0)
        if room:
            self._kept.append(text[:room])
            self._size += min(len(text), room)
        self._cut += max(len(text) - room, 0)

    def text(self) -> str:
        """What was kept, with a note of how much was cut."""
        kept = "".join(self._kept)
        return f"{kept}… (cut: {self._cut:,} more characters)" if self._cut else kept


def _drain(process: subprocess.Popen[bytes], timeout: float) -> tuple[_Output, _Output]:
    """The process's standard output and error, each read on a thread of its own until the
    process and whatever holds its pipes are done; TimeoutExpired after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    assert process.stdout is not None  # both are pipes
    assert process.stderr is not None
    outputs = (_Output(process.stdout, MAX_OUTPUT // 2), _Output(process.stderr, MAX_OUTPUT // 2))
    # Each reader closes its pipe when done, not Popen: a grandchild that escaped the kill may
    # hold one open, and a reader whose descriptor was closed would read the next file given it.
    process.stdout = process.stderr = None

    readers = [threading.Thread(target=output.drain, daemon=True) for output in outputs]
    for reader in readers:
        reader.start()
    process.wait(timeout)

    for reader in readers:
        reader.join(max(deadline - time.monotonic(), 0.0))
        if reader.is_alive():
            raise subprocess.TimeoutExpired(process.args, timeout)
    return outputs


def stop_running() -> None:
    """Stop run_python's code still running: at Ctrl-C, and when m2 ends. In a session of its
    own, Ctrl-C does not reach it, and the thread that waits for it dies with m2."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        _kill(process)


atexit.register(stop_running)


def _kill(process: subprocess.Popen[bytes]) -> None:
    # Popen's exit then only waits: a grandchild that kept the pipes open cannot hold m2 up.
    if sys.platform == "win32":
        process.kill()
    else:
        with contextlib.suppress(ProcessLookupError):  # it ended just now
            os.killpg(process.pid, signal.SIGKILL)


BUILTINS: dict[str, Tool[..., Any]] = {
    found.name: found for found in (read_file, list_dir, run_python)
}
