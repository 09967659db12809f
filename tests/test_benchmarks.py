"""The benchmark script works: each stage it times gives the right answer. Times are not tested."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

# benchmarks/ is a folder of scripts, not a package: it is importable once on the path.
import run as benchmark
from _bench_stream import BenchServer, big_reply, small_reply


def test_in_process_stages_give_the_answer() -> None:
    """If the splitter, accumulator and client stages run on a tiny stream, then each yields the
    reply's exact answer."""
    reply = big_reply(60)
    with BenchServer(reply) as server:
        results = [
            benchmark.splitter_throughput(reply, rounds=1),
            benchmark.accumulator_throughput(reply, rounds=1),
            benchmark.client_throughput(server, reply, rounds=1),
        ]

    assert reply.answer.startswith("def factorial")
    assert [result.answer for result in results] == [reply.answer] * 3
    assert all(result.best > 0 for result in results)


def test_commands_print_the_expected_output() -> None:
    """If `m2 ask` and the openai-SDK script stream the small reply, then each prints exactly
    what the benchmark expects, and each was answered by the bench server."""
    reply = small_reply()
    with BenchServer(reply) as server:
        commands = benchmark.ask_commands(server, reply, with_uv=False)
        timings = benchmark.time_commands(commands, benchmark.clean_env(), repeat=1, warmup=0)

        assert server.served == 2
    assert [timing.label for timing in timings] == [command.label for command in commands]
    assert commands[0].expected == (reply.answer + "\n").encode()
    assert commands[-1].expected == (reply.raw + "\n").encode()


def test_wrong_output_is_not_timed() -> None:
    """If a command prints something other than the expected output, then `run_once` raises
    `WrongOutput` instead of returning a time."""
    command = benchmark.Command("wrong", (sys.executable, "-c", "print('no')"), b"yes\n")

    with pytest.raises(benchmark.WrongOutput, match="wrong standard output"):
        benchmark.run_once(command, benchmark.clean_env())
