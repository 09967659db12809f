"""Speed of `m2 ask` against a plain openai-SDK script, side by side on one local server.

    uv run python benchmarks/run.py                 # the full run: 15 timed runs of each command
    uv run python benchmarks/run.py --repeat 5 --markdown
    uv run python benchmarks/run.py --profile       # also cProfile `m2 ask` on the big stream

Measured, in one run against the same server (see docs/benchmarks.md):

1. a small MiniMax-M2 reply, `m2 ask` (the venv's `m2`, and `uv run m2`) against
   `benchmarks/openai_stream.py`, each a fresh process, as a user runs them;
2. a 20,000-chunk stream, the same commands, standard output drained from a pipe;
3. `m2 --help` cold start, next to a bare interpreter start and `import openai`;
4. chunks per second through the `StreamSplitter`, the `ChunkAccumulator` (dict chunk to events)
   and `Client.stream` in this process (HTTP, SSE, JSON and accumulation; no process start).

Every command's standard output is compared with the exact expected text before its time counts:
a fast wrong answer raises `WrongOutput`. Runs of the commands being compared are interleaved, so
a slow moment of the machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from _bench_stream import MODEL, PROMPT, BenchServer, ScriptedReply, big_reply, small_reply

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
OPENAI_SCRIPT = Path(__file__).resolve().parent / "openai_stream.py"

SMALL_GOAL = 0.7
BIG_GOAL = 1 / 3
HELP_GOAL = 0.3

# Variables that would send the requests elsewhere or change what m2 sends.
_STRIPPED = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_API", "HF_TOKEN_PATH")


class WrongOutput(Exception):
    """A benchmarked command exited with an error or printed something other than the answer."""


@dataclass(frozen=True)
class Command:
    """A command to time, and the exact standard output it must produce."""

    label: str
    argv: tuple[str, ...]
    expected: bytes | None = None  # None: only the exit status is checked
    contains: bytes = b""


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs of one command."""

    label: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> str:
        return f"{min(self.seconds):.3f}-{max(self.seconds):.3f}"


@dataclass(frozen=True)
class Throughput:
    """Chunks per second of an in-process stage, best and median over its rounds."""

    label: str
    chunks: int
    seconds: tuple[float, ...]
    answer: str  # what the stage produced, checked against the reply's answer

    @property
    def best(self) -> float:
        return self.chunks / min(self.seconds)

    @property
    def median(self) -> float:
        return self.chunks / statistics.median(self.seconds)


def clean_env() -> dict[str, str]:
    """This environment without tokens, `M2_*` settings or proxies; the loopback goes direct."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _STRIPPED
        and not name.startswith("M2_")
        and not name.upper().endswith("_PROXY")
    }
    env["NO_PROXY"] = "127.0.0.1,localhost"
    # m2 ask keeps each turn in its store, as for a user; here in a throwaway one.
    env["M2_HOME"] = _BENCH_HOME
    return env


_BENCH_HOME = tempfile.mkdtemp(prefix="m2kit-bench-home-")


def user_env(cache: Path | None) -> dict[str, str]:
    """`clean_env()` as a user's shell has it: bytecode cached (under `cache`, outside the tree)
    and standard output buffered. With `cache` None, every start compiles from source."""
    env = clean_env()
    env.pop("PYTHONUNBUFFERED", None)
    if cache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def scripts_dir() -> Path:
    """The running venv's `bin` (where `uv sync` put `m2`)."""
    return Path(sysconfig.get_path("scripts"))


def m2_command(label: str, prefix: Sequence[str], base_url: str, reply: ScriptedReply) -> Command:
    """`m2 ask` for `reply`: standard output is the answer alone, ending in a newline."""
    expected = reply.answer if reply.answer.endswith("\n") else reply.answer + "\n"
    argv = (*prefix, "ask", "--base-url", base_url, "--model", MODEL, PROMPT)
    return Command(label, argv, expected.encode())


def openai_command(base_url: str, reply: ScriptedReply) -> Command:
    """The openai-SDK script for `reply`: it prints the raw content, then a newline."""
    argv = (sys.executable, str(OPENAI_SCRIPT), base_url, PROMPT)
    return Command("openai SDK script", argv, (reply.raw + "\n").encode())


def ask_commands(server: BenchServer, reply: ScriptedReply, *, with_uv: bool) -> list[Command]:
    """The commands compared on one reply: venv `m2`, optionally `uv run m2`, the SDK script."""
    base_url = server.base_url(reply.name)
    commands = [m2_command("m2 ask (.venv/bin/m2)", [str(scripts_dir() / "m2")], base_url, reply)]

    uv = shutil.which("uv")
    if with_uv and uv is not None:
        # --locked: time what `uv run` checks, but never rewrite uv.lock from a benchmark.
        commands.append(
            m2_command("m2 ask (uv run m2)", [uv, "run", "--locked", "m2"], base_url, reply)
        )
    commands.append(openai_command(base_url, reply))
    return commands


def start_commands() -> list[Command]:
    """`m2 --help`, with a bare interpreter start and the SDK's import cost as yardsticks."""
    python = sys.executable
    return [
        Command("m2 --help", (str(scripts_dir() / "m2"), "--help"), contains=b"ask"),
        Command("python -c pass", (python, "-c", "pass")),
        Command("python -c 'import openai'", (python, "-c", "import openai")),
    ]


def run_once(command: Command, env: Mapping[str, str]) -> float:
    """Run `command` once; its wall-clock seconds, after its output proved right."""
    started = time.perf_counter()
    result = subprocess.run(
        command.argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=dict(env),
        cwd=ROOT,
        check=False,
    )
    seconds = time.perf_counter() - started

    problem = _problem(command, result)
    if problem:
        stderr = result.stderr.decode(errors="replace").strip()[-800:]
        raise WrongOutput(f"{command.label}: {problem}\n{stderr}")
    return seconds


def _problem(command: Command, result: subprocess.CompletedProcess[bytes]) -> str:
    if result.returncode != 0:
        return f"exit status {result.returncode}"
    if command.expected is not None and result.stdout != command.expected:
        got, want = len(result.stdout), len(command.expected)
        return f"wrong standard output ({got} bytes, {want} expected): {result.stdout[:200]!r}"
    if command.contains not in result.stdout:
        return f"standard output lacks {command.contains!r}"
    return ""


def time_commands(
    commands: Sequence[Command], env: Mapping[str, str], *, repeat: int, warmup: int = 1
) -> list[Timing]:
    """Each command `repeat` times, round-robin, after `warmup` untimed rounds (bytecode caches)."""
    for _ in range(warmup):
        for command in commands:
            run_once(command, env)

    seconds: dict[str, list[float]] = {command.label: [] for command in commands}
    for _ in range(repeat):
        for command in commands:
            seconds[command.label].append(run_once(command, env))
    return [Timing(label, tuple(values)) for label, values in seconds.items()]


def splitter_throughput(reply: ScriptedReply, *, rounds: int) -> Throughput:
    """`StreamSplitter.feed_content` for every piece of `reply`, then `finish`."""
    from m2kit import StreamSplitter, profile_for

    seconds, answer = [], ""
    for _ in range(rounds):
        splitter = StreamSplitter(profile_for(MODEL))
        answers: list[str] = []
        started = time.perf_counter()
        for piece in reply.pieces:
            answers.append(splitter.feed_content(piece)[1])
        answers.append(splitter.finish("stop")[1])
        seconds.append(time.perf_counter() - started)
        answer = "".join(answers)

    _check_answer("StreamSplitter", answer, reply)
    return Throughput("StreamSplitter.feed_content", len(reply.pieces), tuple(seconds), answer)


def accumulator_throughput(reply: ScriptedReply, *, rounds: int) -> Throughput:
    """`ChunkAccumulator.feed` for every chunk dict of `reply`, then `finish`."""
    from m2kit import AnswerDelta, profile_for
    from m2kit._accumulate import ChunkAccumulator

    chunks = reply.chunks()
    seconds, answer = [], ""
    for _ in range(rounds):
        accumulator = ChunkAccumulator(profile_for(MODEL))
        answers: list[str] = []
        started = time.perf_counter()
        for chunk in chunks:
            answers += [e.text for e in accumulator.feed(chunk) if isinstance(e, AnswerDelta)]
        events, final = accumulator.finish(done=True)
        answers += [e.text for e in events if isinstance(e, AnswerDelta)]
        seconds.append(time.perf_counter() - started)
        answer = "".join(answers)
        _check_answer("ChunkAccumulator (reply)", final.text, reply)

    _check_answer("ChunkAccumulator", answer, reply)
    return Throughput("ChunkAccumulator.feed (dict chunk)", len(chunks), tuple(seconds), answer)


def client_throughput(server: BenchServer, reply: ScriptedReply, *, rounds: int) -> Throughput:
    """`Client.stream` over HTTP from the local server, in this process: no start-up, no output."""
    from m2kit import AnswerDelta, Client

    seconds, answer = [], ""
    with Client(MODEL, server.base_url(reply.name)) as client:
        for _ in range(rounds):
            answers: list[str] = []
            started = time.perf_counter()
            for event in client.stream(PROMPT):
                if isinstance(event, AnswerDelta):
                    answers.append(event.text)
            seconds.append(time.perf_counter() - started)
            answer = "".join(answers)

    _check_answer("Client.stream", answer, reply)
    stage = "Client.stream (HTTP+SSE+JSON)"
    return Throughput(stage, reply.chunk_count, tuple(seconds), answer)


def _check_answer(stage: str, answer: str, reply: ScriptedReply) -> None:
    if answer != reply.answer:
        raise WrongOutput(
            f"{stage}: wrong answer ({len(answer)} chars, {len(reply.answer)} expected)"
        )


def profile_m2(
    server: BenchServer, reply: ScriptedReply, env: Mapping[str, str], *, top: int = 25
) -> str:
    """`m2 ask` on `reply` under cProfile, in a fresh process: the `top` functions by own time."""
    import pstats
    from io import StringIO

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "m2.prof"
        command = m2_command("m2 ask (cProfile)", [], server.base_url(reply.name), reply)
        profiled = (sys.executable, "-m", "cProfile", "-o", str(out), str(scripts_dir() / "m2"))
        run_once(Command(command.label, profiled + command.argv, command.expected), env)

        text = StringIO()
        stats = pstats.Stats(str(out), stream=text)
        stats.sort_stats("tottime").print_stats(top)
    return text.getvalue()


@dataclass(frozen=True)
class Row:
    measure: str
    what: str
    median: str
    spread: str
    ratio: str = ""
    goal: str = ""


def ask_rows(measure: str, timings: Sequence[Timing], goal: float) -> list[Row]:
    """One row per command; `m2` rows carry their ratio to the SDK script and the goal."""
    anchor = timings[-1].median
    rows = []
    for timing in timings:
        ratio, verdict = "", ""
        if timing is not timings[-1]:
            value = timing.median / anchor
            mark = "met" if value <= goal else "MISSED"
            ratio, verdict = f"{value:.2f}x", f"<= {goal:.2f}x: {mark}"
        rows.append(Row(measure, timing.label, _s(timing.median), timing.spread, ratio, verdict))
    return rows


def start_rows(timings: Sequence[Timing]) -> list[Row]:
    rows = []
    for timing in timings:
        goal = ""
        if timing.label == "m2 --help":
            goal = f"< {HELP_GOAL} s: {'met' if timing.median < HELP_GOAL else 'MISSED'}"
        rows.append(Row("cold start", timing.label, _s(timing.median), timing.spread, goal=goal))
    return rows


def throughput_rows(results: Sequence[Throughput]) -> list[Row]:
    rows = []
    for result in results:
        per_chunk = 1e6 / result.median
        rows.append(
            Row(
                f"in-process, {result.chunks:,} chunks",
                result.label,
                f"{result.median:,.0f}/s",
                f"best {result.best:,.0f}/s",
                f"{per_chunk:.1f} us/chunk",
            )
        )
    return rows


def _s(seconds: float) -> str:
    return f"{seconds:.3f} s"


_HEADERS = ("measure", "command or stage", "median", "spread (min-max)", "ratio or cost", "goal")


def format_table(rows: Sequence[Row], *, markdown: bool) -> str:
    cells = [_HEADERS] + [
        (row.measure, row.what, row.median, row.spread, row.ratio, row.goal) for row in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(line) + " |" for line in cells]
        lines.insert(1, "|" + "---|" * len(_HEADERS))
        return "\n".join(lines)

    widths = [max(len(line[column]) for line in cells) for column in range(len(_HEADERS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def machine() -> str:
    """One line about where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in ("m2kit", "httpx2", "openai")
    )
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}; {versions}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    small, big = small_reply(), big_reply(options.chunks)
    say = printer(options.quiet)

    with tempfile.TemporaryDirectory(prefix="m2-bench-") as folder:
        cache = None if options.no_bytecode_cache else Path(folder)
        env = user_env(cache)
        with BenchServer(small, big) as server:
            rows = _measure(server, env, small, big, options, say)
            profile = profile_m2(server, big, env) if options.profile else ""

    print(machine())
    print("bytecode: " + ("compiled at every start" if cache is None else "cached (warm-up run)"))
    print(format_table(rows, markdown=options.markdown))
    if profile:
        print(f"\ncProfile of m2 ask on the big stream, by own time:\n{profile}")
    return 0


def _measure(
    server: BenchServer,
    env: Mapping[str, str],
    small: ScriptedReply,
    big: ScriptedReply,
    options: argparse.Namespace,
    say: Callable[[str], None],
) -> list[Row]:
    say(f"small reply: {len(small.pieces)} chunks, {options.repeat} runs of each command")
    commands = ask_commands(server, small, with_uv=True)
    rows = ask_rows("small reply", time_commands(commands, env, repeat=options.repeat), SMALL_GOAL)

    say(f"big stream: {len(big.pieces):,} chunks, {options.big_repeat} runs of each command")
    commands = ask_commands(server, big, with_uv=False)
    timings = time_commands(commands, env, repeat=options.big_repeat)
    rows += ask_rows(f"big stream ({len(big.pieces):,} chunks)", timings, BIG_GOAL)

    say(f"cold start: {options.repeat} runs of each command")
    rows += start_rows(time_commands(start_commands(), env, repeat=options.repeat))

    say(f"in-process throughput: {options.rounds} rounds of each stage")
    return rows + throughput_rows(
        [
            splitter_throughput(big, rounds=options.rounds),
            accumulator_throughput(big, rounds=options.rounds),
            client_throughput(server, big, rounds=options.rounds),
        ]
    )


def printer(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return say


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per command (15)")
    parser.add_argument("--big-repeat", type=int, default=15, help="the same, big stream (15)")
    parser.add_argument("--chunks", type=int, default=20_000, help="big stream size (20000)")
    parser.add_argument("--rounds", type=int, default=7, help="in-process rounds (7)")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--profile", action="store_true", help="cProfile m2 on the big stream")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="let every command compile its modules from source, as with PYTHONDONTWRITEBYTECODE",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


if __name__ == "__main__":
    sys.exit(main())
