"""The benchmark script works: each stage it times gives the right answer. Times are not tested."""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

# benchmarks/ is a folder of scripts, not a package: it is importable once on the path.
import agent as agent_bench
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


def test_agent_loops_end_with_the_answer() -> None:
    """If every agent-loop side runs one loop on the loop server, then each ends with its exact
    answer after two tool runs, in three steps."""
    lookup = agent_bench.Lookup()
    with (
        agent_bench.LoopServer() as server,
        contextlib.closing(agent_bench.Clients.on(server)) as clients,
    ):
        sides = agent_bench.whole_sides(clients, lookup) + agent_bench.stream_sides(clients, lookup)
        timings = agent_bench.time_loops(sides, server, repeat=1, loops=1, warmup=0)
        served = server.served

    assert [timing.label for timing in timings] == [side.label for side in sides]
    assert served == len(sides) * agent_bench.STEPS
    assert lookup.runs == len(sides) * len(agent_bench.KEYS)
    answers = {side.expected.answer for side in sides}
    assert answers == {agent_bench.ANSWER, agent_bench.step_content(2, native=False)}
    assert agent_bench.step_content(2, native=False).endswith("</think>\n\n" + agent_bench.ANSWER)


def test_native_steps_carry_blocks_and_no_tool_calls() -> None:
    """If the loop server answers the first step at its native URL, then the call is a
    `<minimax:tool_call>` block in the content and the standard `tool_calls` list is empty."""
    prompt = [{"role": "user", "content": agent_bench.PROMPT}]
    body = {"model": "m", "messages": prompt, "tools": agent_bench.OPENAI_TOOLS}
    with agent_bench.LoopServer() as server:
        status, answer = _post(server, "native", body)

    message = answer["choices"][0]["message"]
    assert status == 200
    assert message["content"] == agent_bench.step_content(0, native=True)
    assert '<invoke name="lookup">\n<parameter name="key">a</parameter>' in message["content"]
    assert message["tool_calls"] == []


def test_loop_server_refuses_a_history_without_thinking() -> None:
    """If a loop sends a step back without its thinking, then the loop server answers 400 and
    says so, so such a loop cannot be timed."""
    call = {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": agent_bench.PROMPT},
        {"role": "assistant", "content": "I look up a.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_a", "content": "1"},
    ]
    body = {"model": "m", "messages": messages, "tools": agent_bench.OPENAI_TOOLS}
    with agent_bench.LoopServer() as server:
        status, answer = _post(server, "standard", body)
        served = server.served

    assert status == 400
    assert "lost its thinking" in answer["error"]["message"]
    assert served == 0


def _post(server: agent_bench.LoopServer, form: str, body: object) -> tuple[int, Any]:
    url = urlsplit(server.base_url(form))
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request("POST", url.path + "/chat/completions", json.dumps(body))
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_wrong_loop_outcome_is_not_timed() -> None:
    """If a loop ends with another answer, or makes no requests, then `time_loops` raises
    `WrongOutput` instead of returning a time."""
    lookup = agent_bench.Lookup()
    with (
        agent_bench.LoopServer() as server,
        contextlib.closing(agent_bench.Clients.on(server)) as clients,
    ):
        right = agent_bench.whole_sides(clients, lookup)[0]
        wrong = agent_bench.Side("wrong", right.loop, agent_bench.Outcome("another", 2))
        idle = agent_bench.Side("idle", lambda: right.expected, right.expected)

        with pytest.raises(benchmark.WrongOutput, match="instead of"):
            agent_bench.time_loops([wrong], server, repeat=1, loops=1, warmup=0)
        with pytest.raises(benchmark.WrongOutput, match="0 steps served"):
            agent_bench.time_loops([idle], server, repeat=1, loops=1, warmup=0)


def test_parser_stages_give_the_exact_output() -> None:
    """If the native-parser and accumulator stages run on a tiny stream, then each gives its
    exact text, and the block stages the one `write_file` call with the answer as its content."""
    stages = agent_bench.parser_stages(60)
    timings = agent_bench.time_stages(stages, rounds=1, warmup=0)

    assert [timing.label for timing in timings] == [stage.label for stage in stages]
    assert all(timing.best > 0 for timing in timings)
    calls = [stage.expected.calls for stage in stages]
    assert [len(found) for found in calls] == [0, 1, 0, 0, 1]
    name, arguments = calls[1][0]
    assert name == "write_file"
    assert json.loads(arguments)["content"].startswith("def factorial")
    assert stages[2].expected.text.startswith("def factorial")


def test_agent_benchmark_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    """If the agent benchmark runs once at a tiny size, then it prints a markdown row for every
    side and stage."""
    argv = ["--repeat", "1", "--loops", "1", "--chunks", "60", "--rounds", "1"]
    assert agent_bench.main([*argv, "--markdown", "--quiet"]) == 0

    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 5 + 3 + 5  # the header, whole sides, streamed sides, stages
    assert any("x SDK" in row for row in rows)
