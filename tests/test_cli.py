"""`m2 ask` end to end, run as a subprocess the way a user runs it, against the scripted server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from _server import chunk, completion, error_step, json_step, stream_step

if TYPE_CHECKING:
    from _server import ScriptedServer

M2 = str(Path(sys.executable).with_name("m2"))

THINK_THEN_ANSWER = [
    chunk(role="assistant", content=""),
    chunk(content="The user wants a factorial.\nRecursion is simplest."),
    chunk(content="</thi"),
    chunk(content="nk>\n\n"),
    chunk(content="def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)"),
    chunk(finish_reason="stop"),
    chunk(choices=False, usage={"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}),
]
ANSWER = "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n"


def m2(
    server: ScriptedServer, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "M2_BASE_URL": server.base_url, **(env or {})}
    return subprocess.run(
        [M2, *args], input=stdin, env=full_env, capture_output=True, text=True, timeout=30
    )


def test_answer_only_on_stdout(server: ScriptedServer) -> None:
    """If the model thinks then answers, then stdout carries only the answer and nothing leaks."""
    server.queue(stream_step(THINK_THEN_ANSWER, headers={"x-inference-provider": "novita"}))

    result = m2(server, "ask", "Write a factorial.")

    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER
    assert result.stderr == ""  # no indicator, footer or colour when stderr is not a terminal


def test_think_shows_thinking_on_stderr(server: ScriptedServer) -> None:
    """If --think is given, then the thinking goes to stderr and stdout keeps only the answer."""
    server.queue(stream_step(THINK_THEN_ANSWER))

    result = m2(server, "ask", "--think", "Write a factorial.")

    assert result.stdout == ANSWER
    assert "The user wants a factorial.\nRecursion is simplest." in result.stderr
    assert "</think>" not in result.stderr
    assert "\x1b[" not in result.stderr


def test_raw_prints_content_as_received(server: ScriptedServer) -> None:
    """If --raw is given, then the content is printed exactly as received, tags included."""
    server.queue(stream_step(THINK_THEN_ANSWER))

    result = m2(server, "ask", "--raw", "Write a factorial.")

    raw = "The user wants a factorial.\nRecursion is simplest.</think>\n\n" + ANSWER
    assert result.stdout == raw


def test_json_has_every_field(server: ScriptedServer) -> None:
    """If --json is given, then one JSON object carries answer, reasoning, raw, provider, usage."""
    server.queue(stream_step(THINK_THEN_ANSWER, headers={"x-inference-provider": "novita"}))

    result = m2(server, "ask", "--json", "Write a factorial.")

    data = json.loads(result.stdout)
    assert data["answer"] == ANSWER.rstrip("\n")
    assert data["reasoning"] == "The user wants a factorial.\nRecursion is simplest."
    assert data["raw"].startswith("The user wants")
    assert "</think>" in data["raw"]
    assert data["provider"] == "novita"
    assert data["model"] == "MiniMaxAI/MiniMax-M2"
    assert data["finish_reason"] == "stop"
    assert data["usage"]["total_tokens"] == 42


def test_no_stream_gives_the_same_answer(server: ScriptedServer) -> None:
    """If --no-stream is given, then a whole completion is asked for and the same answer printed."""
    content = "thinking here</think>\n\n" + ANSWER
    server.queue(json_step(completion(content)))

    result = m2(server, "ask", "--no-stream", "Write a factorial.")

    assert result.stdout == ANSWER
    assert "stream" not in server.requests[0].json()


def test_stdin_follows_the_prompt(server: ScriptedServer) -> None:
    """If text is piped and a prompt given, then the request carries the prompt, then the text."""
    server.queue(stream_step(THINK_THEN_ANSWER))

    m2(server, "ask", "-s", "Be brief.", "Review this:", stdin="diff --git a b\n")

    messages = server.requests[0].json()["messages"]
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Review this:\n\ndiff --git a b"},
    ]


def test_stdin_alone_is_the_prompt(server: ScriptedServer) -> None:
    """If only stdin has text, then it is the prompt."""
    server.queue(stream_step(THINK_THEN_ANSWER))

    result = m2(server, "ask", stdin="What is 2+2?\n")

    assert result.returncode == 0
    assert server.requests[0].json()["messages"] == [{"role": "user", "content": "What is 2+2?"}]


def test_options_reach_the_server(server: ScriptedServer) -> None:
    """If sampling options are given, then a self-hosted server receives all of them, top_k too."""
    server.queue(stream_step(THINK_THEN_ANSWER))

    m2(
        server,
        "ask",
        "hi",
        "-m",
        "my-model",
        "--max-tokens",
        "64",
        "--temperature",
        "0.2",
        "--top-p",
        "0.5",
        "--top-k",
        "40",
        "--seed",
        "7",
        "--stop",
        "END",
        "--stop",
        "STOP",
    )

    body = server.requests[0].json()
    assert body["model"] == "my-model"
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (64, 0.2, 0.5)
    assert (body["top_k"], body["seed"], body["stop"]) == (40, 7, ["END", "STOP"])


def test_no_prompt_is_a_usage_error(server: ScriptedServer) -> None:
    """If there is neither a prompt nor piped text, then m2 exits 2 saying how to ask."""
    result = m2(server, "ask")

    assert result.returncode == 2
    assert "no prompt" in result.stderr
    assert not server.requests


@pytest.mark.parametrize(
    "args",
    [
        ("ask", "--temperature", "hot"),
        ("ask", "--no-such-flag"),
        (
            "ask",
            "-m",
            "MiniMaxAI/MiniMax-M2:fastets",
            "--base-url",
            "https://router.huggingface.co/v1",
        ),
    ],
    ids=["bad-value", "unknown-flag", "suffix-typo"],
)
def test_usage_errors_exit_2(server: ScriptedServer, args: tuple[str, ...]) -> None:
    """If an option is wrong, then m2 exits 2 without a traceback and sends nothing."""
    result = m2(server, *args, "hi")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert not server.requests


def test_suffix_typo_lists_the_choices(server: ScriptedServer) -> None:
    """If the routing suffix is a typo, then the message suggests the fix and lists the choices."""
    result = m2(server, "ask", "-m", "MiniMaxAI/MiniMax-M2:fastets", "hi", env={"M2_BASE_URL": ""})

    assert result.returncode == 2
    assert ":fastest" in result.stderr
    assert ":cheapest" in result.stderr
    assert ":novita" in result.stderr


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": "Invalid credentials in Authorization header"}, "--api-key"),
        (402, {"error": "You have exceeded your monthly included credits."}, "pre-paid credits"),
        (
            403,
            {"error": "This authentication method does not have sufficient permissions"},
            "Make calls",
        ),
        (404, {"error": {"message": "Model not found"}}, "model name"),
        (422, "Failed to deserialize the JSON body", "Failed to deserialize"),
        (400, {"error": {"message": "max_tokens is too large"}}, "max_tokens is too large"),
    ],
)
def test_errors_are_one_line_with_the_fix(
    server: ScriptedServer, status: int, body: str | dict[str, object], expected: str
) -> None:
    """If the server refuses the request, then m2 exits 1 with one line naming the fix, no retry."""
    server.queue(error_step(status, body))

    result = m2(server, "ask", "hi")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(server.requests) == 1


def test_api_key_never_printed(server: ScriptedServer) -> None:
    """If the server echoes the key in its error, then m2 still never prints the key."""
    key = "sk-secret-key-1234567890"
    server.queue(error_step(401, {"error": f"bad key {key}"}))

    result = m2(server, "ask", "hi", env={"M2_API_KEY": key})

    assert server.requests[0].headers["authorization"] == f"Bearer {key}"
    assert key not in result.stderr
    assert "secret-key" not in result.stderr


def test_waits_are_shown(server: ScriptedServer) -> None:
    """If the server rate-limits then answers, then stderr shows the wait and the answer arrives."""
    server.queue(
        error_step(429, {"error": "Too many requests"}, headers={"retry-after-ms": "50"}),
        error_step(503, {"error": "Model is currently loading", "estimated_time": 0.05}),
        stream_step(THINK_THEN_ANSWER),
    )

    result = m2(server, "ask", "hi")

    assert result.returncode == 0
    assert result.stdout == ANSWER
    assert "rate limited (429); waiting 0.1 s as the server asked" in result.stderr
    assert "model is loading (503)" in result.stderr


def test_retry_budget_is_respected(server: ScriptedServer) -> None:
    """If the server asks for a wait beyond --retry-budget, then m2 fails at once saying so."""
    server.queue(error_step(429, {"error": "slow down"}, headers={"retry-after": "300"}))

    started = time.monotonic()
    result = m2(server, "ask", "--retry-budget", "5", "hi")

    assert time.monotonic() - started < 20
    assert result.returncode == 1
    assert "300 s" in result.stderr
    assert "retry budget" in result.stderr


def test_dropped_stream_is_not_an_answer(server: ScriptedServer) -> None:
    """If the connection drops mid-answer, then m2 exits 1 and says the answer is incomplete."""
    events = [chunk(content="thinking</think>\n\nThe first half")]
    server.queue(stream_step(events, done=False, drop_after=1))

    result = m2(server, "ask", "hi")

    assert result.returncode == 1
    assert result.stdout.startswith("The first half")
    assert "incomplete" in result.stderr
    assert len(server.requests) == 1


def test_error_inside_the_stream(server: ScriptedServer) -> None:
    """If the server sends an error event mid-stream, then m2 exits 1 with the server's message."""
    events: list[dict[str, Any] | str] = [
        chunk(content="thinking"),
        'event: error\ndata: {"error": {"message": "tool_use_failed upstream"}}\n\n',
    ]
    server.queue(stream_step(events, done=False))

    result = m2(server, "ask", "hi")

    assert result.returncode == 1
    assert "tool_use_failed upstream" in result.stderr
    assert ":provider" not in result.stderr  # a self-hosted server has no providers to pin


def test_cut_while_thinking_names_max_tokens(server: ScriptedServer) -> None:
    """If the token limit is hit while thinking, then m2 prints no answer and says to raise it."""
    server.queue(
        stream_step([chunk(content="still thinking about"), chunk(finish_reason="length")])
    )

    result = m2(server, "ask", "--max-tokens", "5", "hi")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "--max-tokens" in result.stderr


def test_ctrl_c_stops_cleanly(server: ScriptedServer) -> None:
    """If the user presses Ctrl-C mid-stream, then m2 stops with exit 130 and no traceback."""
    events = [chunk(content="thinking</think>\n\nfirst")] + [chunk(content=" more")] * 50
    server.queue(stream_step(events, chunk_delay=0.1))
    env = {**os.environ, "M2_BASE_URL": server.base_url}
    process = subprocess.Popen(
        [M2, "ask", "hi"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    assert process.stdout is not None
    assert process.stdout.read(5) == "first"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)

    assert process.returncode == 130
    assert "interrupted" in stderr
    assert "Traceback" not in stderr


def test_broken_pipe_is_quiet(server: ScriptedServer) -> None:
    """If the reader of stdout goes away, then m2 ends quietly without a traceback."""
    events = [chunk(content="x</think>\n\n")] + [chunk(content="line\n" * 2000)] * 20
    server.queue(stream_step(events))
    command = f"{M2} ask hi | head -n 1"
    env = {**os.environ, "M2_BASE_URL": server.base_url}

    result = subprocess.run(
        command, shell=True, env=env, capture_output=True, text=True, timeout=30
    )

    assert result.stdout == "line\n"
    assert "Traceback" not in result.stderr
    assert "Broken pipe" not in result.stderr


def test_help_and_version() -> None:
    """If --help or --version is asked, then m2 answers at once and exits 0."""
    help_result = subprocess.run([M2, "--help"], capture_output=True, text=True, timeout=30)
    version = subprocess.run([M2, "--version"], capture_output=True, text=True, timeout=30)

    assert help_result.returncode == 0
    assert "ask" in help_result.stdout
    assert version.returncode == 0
    assert version.stdout.startswith("m2 ")


def test_help_does_not_load_the_http_stack() -> None:
    """If m2 --help runs, then neither the HTTP stack nor the Hub library is imported."""
    code = (
        "import sys, m2kit.cli\n"
        "try:\n    m2kit.cli.app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('httpx2', 'huggingface_hub', 'pydantic') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )

    assert result.stdout.strip().endswith("[]"), result.stdout


def test_sse_comments_and_no_done(server: ScriptedServer) -> None:
    """If a stream has keep-alive comments and ends without [DONE], then the answer is complete."""
    server.queue(stream_step([": keep-alive\n\n", *THINK_THEN_ANSWER], done=False))

    result = m2(server, "ask", "hi")

    assert result.returncode == 0
    assert result.stdout == ANSWER


def _on_terminal(server: ScriptedServer, *args: str, env: dict[str, str] | None = None) -> str:
    """Run m2 on a real pseudo-terminal (stdout and stderr both on it); return what it shows."""
    import pexpect

    full_env = {**os.environ, "M2_BASE_URL": server.base_url, "TERM": "xterm", **(env or {})}
    child = pexpect.spawn(M2, list(args), env=full_env, encoding="utf-8", timeout=20)
    output = child.read()
    child.close()
    assert child.exitstatus == 0, output
    return str(output)


def test_terminal_shows_a_thinking_indicator(server: ScriptedServer) -> None:
    """If stderr is a terminal and --think is off, then a dim indicator stands in for thinking."""
    server.queue(stream_step(THINK_THEN_ANSWER, chunk_delay=0.05))

    screen = _on_terminal(server, "ask", "hi")

    assert "thinking…" in screen
    assert "Recursion is simplest" not in screen
    assert "\r\x1b[K" in screen
    assert "return 1 if n < 2" in screen


def test_terminal_dims_the_thinking(server: ScriptedServer) -> None:
    """If --think is on a terminal, then the thinking is dimmed and the answer is not."""
    server.queue(stream_step(THINK_THEN_ANSWER))

    screen = _on_terminal(server, "ask", "--think", "hi")

    assert "\x1b[2mThe user wants a factorial." in screen
    assert screen.index("\x1b[0m") < screen.index("def fact")


def test_no_color_is_honoured(server: ScriptedServer) -> None:
    """If NO_COLOR is set, then no colour codes reach the terminal."""
    server.queue(stream_step(THINK_THEN_ANSWER))

    screen = _on_terminal(server, "ask", "--think", "hi", env={"NO_COLOR": "1"})

    assert "\x1b[2m" not in screen
    assert "Recursion is simplest." in screen


def test_missing_token_is_explained(server: ScriptedServer) -> None:
    """If no token is set for the router, then m2 says to set HF_TOKEN or log in."""
    result = m2(server, "ask", "hi", env={"M2_BASE_URL": ""})

    assert result.returncode == 2
    assert "HF_TOKEN" in result.stderr
    assert "hf auth login" in result.stderr
    assert result.stderr.count("\n") == 1


def test_empty_answer_is_reported(server: ScriptedServer) -> None:
    """If the model stops with thinking but no answer, then m2 says so and exits 1."""
    server.queue(stream_step([chunk(content="<think>pondering"), chunk(finish_reason="stop")]))

    result = m2(server, "ask", "hi")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "no answer" in result.stderr
    assert "--think" in result.stderr


@pytest.mark.parametrize("mode", ["--json", "--raw", "--no-stream"])
def test_cut_while_thinking_is_reported_in_every_mode(server: ScriptedServer, mode: str) -> None:
    """If the token limit is hit while thinking, then every output mode says to raise it."""
    events = [chunk(content="still thinking about"), chunk(finish_reason="length")]
    whole = json_step(completion("still thinking about", finish_reason="length"))
    server.queue(whole if mode == "--no-stream" else stream_step(events))

    result = m2(server, "ask", mode, "hi")

    assert result.returncode == 1
    assert "--max-tokens" in result.stderr


def test_html_error_page_is_one_line(server: ScriptedServer) -> None:
    """If a proxy answers with an HTML error page, then m2 prints one line naming its title."""
    page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>\n"
    server.queue(*[error_step(502, page)] * 6)

    result = m2(server, "ask", "--retry-budget", "0", "hi")

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "HTML error page (502 Bad Gateway)" in result.stderr


def test_stdin_that_is_not_utf8_still_works(server: ScriptedServer) -> None:
    """If piped bytes are not UTF-8, then they arrive as replacement characters, not a crash."""
    server.queue(stream_step(THINK_THEN_ANSWER))
    full_env = {**os.environ, "M2_BASE_URL": server.base_url}

    result = subprocess.run(
        [M2, "ask", "what is this?"], input=b"caf\xe9\xff", env=full_env, capture_output=True
    )

    assert result.returncode == 0, result.stderr
    content = server.requests[0].json()["messages"][0]["content"]
    assert content == "what is this?\n\ncaf\ufffd\ufffd"


@pytest.mark.parametrize(
    "base_url",
    ["http://localhost:99999/v1", "http://[bad/v1", "http://exa mple.test/v1", "ftp://x.test/v1"],
)
def test_bad_base_url_is_a_usage_error(server: ScriptedServer, base_url: str) -> None:
    """If the base URL is malformed, then m2 exits 2 at once with an example of a good one."""
    result = m2(server, "ask", "--base-url", base_url, "hi")

    assert result.returncode == 2
    assert "localhost:8000/v1" in result.stderr
    assert "Traceback" not in result.stderr


def _resolver_says_no_such_name(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 80)
    except socket.gaierror as error:
        return error.errno == socket.EAI_NONAME
    return False


def test_unknown_host_is_not_retried(server: ScriptedServer) -> None:
    """If the host name does not resolve, then m2 says so at once instead of retrying."""
    host = "m2kit-no-such-host.invalid"
    if not _resolver_says_no_such_name(host):
        pytest.skip("this resolver does not answer 'no such name' (offline, or it rewrites)")

    result = m2(server, "ask", "--base-url", f"http://{host}/v1", "hi")

    assert result.returncode == 1
    assert "does not resolve" in result.stderr
    assert "waiting" not in result.stderr


def test_self_hosted_404_points_at_the_base_url(server: ScriptedServer) -> None:
    """If a self-hosted server answers 404, then the hint is about the base URL and model name."""
    server.queue(error_step(404, {"detail": "Not Found"}))

    result = m2(server, "ask", "hi")

    assert "--base-url" in result.stderr
    assert "/v1" in result.stderr


def test_partial_answer_ends_its_line(server: ScriptedServer) -> None:
    """If the stream drops mid-answer, then the partial answer ends with a newline."""
    server.queue(stream_step([chunk(content="x</think>\n\nhalf")], done=False, drop_after=1))

    result = m2(server, "ask", "hi")

    assert result.stdout == "half\n"


def test_profile_option_for_a_served_name(server: ScriptedServer) -> None:
    """If a self-hosted server calls M2 "m2", then --profile minimax-m2 still splits thinking."""
    server.queue(stream_step(THINK_THEN_ANSWER))

    result = m2(server, "ask", "-m", "m2", "--profile", "minimax-m2", "hi")

    assert result.stdout == ANSWER


def test_unknown_profile_is_a_usage_error(server: ScriptedServer) -> None:
    """If --profile names no profile, then m2 exits 2 listing the names."""
    result = m2(server, "ask", "--profile", "nope", "hi")

    assert result.returncode == 2
    assert "minimax-m2" in result.stderr


def test_empty_no_color_keeps_colour(server: ScriptedServer) -> None:
    """If NO_COLOR is set but empty, then colour stays on, as no-color.org says."""
    server.queue(stream_step(THINK_THEN_ANSWER))

    screen = _on_terminal(server, "ask", "--think", "hi", env={"NO_COLOR": ""})

    assert "\x1b[2m" in screen


def test_option_text_that_is_not_utf8_still_works(server: ScriptedServer) -> None:
    """If an option's bytes are not UTF-8, then they arrive as replacement characters."""
    server.queue(stream_step(THINK_THEN_ANSWER))
    env = {**os.environ, "M2_BASE_URL": server.base_url}

    result = subprocess.run(
        [M2, "ask", "-s", b"sys\xe9", "--stop", b"\xff", "hi"], env=env, capture_output=True
    )

    assert result.returncode == 0, result.stderr
    body = server.requests[0].json()
    assert body["messages"][0]["content"] == "sys\ufffd"
    assert body["stop"] == ["\ufffd"]


def test_ctrl_c_without_output_starts_a_clean_line(server: ScriptedServer) -> None:
    """If Ctrl-C comes while --json waits, then the message is not glued to the echoed ^C."""
    import pexpect

    server.queue(stream_step([chunk(content="slow")] * 50, chunk_delay=0.1))
    env = {**os.environ, "M2_BASE_URL": server.base_url, "TERM": "xterm"}
    child = pexpect.spawn(M2, ["ask", "--json", "hi"], env=env, encoding="utf-8", timeout=20)
    child.expect("thinking")
    child.sendintr()
    screen = str(child.read())
    child.close()

    assert child.exitstatus == 130
    assert "\r\x1b[Km2: interrupted" in screen
