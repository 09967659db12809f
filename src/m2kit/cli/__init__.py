"""The `m2` command. Only typer is imported up front; the client loads when a command runs."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .._version import __version__

app = typer.Typer(
    name="m2",
    help="MiniMax-M2 and other open chat models through Hugging Face Inference Providers.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"m2 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """MiniMax-M2 and other open chat models through Hugging Face Inference Providers.

    Set HF_TOKEN (or run `hf auth login`) and try:  m2 ask "Write a haiku about rain."
    """


# Typer reads these annotations at run time, so they keep `Optional[...]` for Python 3.10.
@app.command()
def ask(
    prompt: Annotated[
        Optional[str],  # noqa: UP045 - typer evaluates the annotation on Python 3.10
        typer.Argument(help="The prompt. Text piped on standard input follows it as context."),
    ] = None,
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "-m",
            "--model",
            envvar="M2_MODEL",
            help="Model id, with an optional routing suffix: :fastest, :cheapest, :preferred"
            " or :<provider>.  [default: MiniMaxAI/MiniMax-M2]",
            show_default=False,
        ),
    ] = None,
    base_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            envvar="M2_BASE_URL",
            help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1 for vLLM or SGLang."
            "  [default: https://router.huggingface.co/v1]",
            show_default=False,
        ),
    ] = None,
    api_key: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="API key. Default: M2_API_KEY; on Hugging Face, HF_TOKEN or `hf auth login`.",
            show_default=False,
        ),
    ] = None,
    system: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("-s", "--system", help="A system prompt."),
    ] = None,
    max_tokens: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(min=1, help="Most tokens to generate, thinking included."),
    ] = None,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature.")] = 1.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling.")] = 0.95,
    top_k: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(min=1, help="Top-k sampling (self-hosted servers only; the router drops it)."),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed.")] = None,  # noqa: UP045
    stop: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="Stop sequence; repeat for several."),
    ] = None,
    think: Annotated[
        bool, typer.Option("--think", help="Also show the thinking, on standard error.")
    ] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Print the content exactly as received, tags included.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with the answer, thinking, usage.")
    ] = False,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Wait for the whole reply instead of streaming.")
    ] = False,
    retry_budget: Annotated[
        float,
        typer.Option(
            min=0.0, help="Seconds to keep retrying rate limits, loading models and 5xx errors."
        ),
    ] = 120.0,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for the server before giving up.")
    ] = 120.0,
) -> None:
    """Ask a model one question and stream the answer to standard output.

    The thinking stays out of the way: `--think` shows it on standard error.

    Examples:

      m2 ask "Write a Python function to calculate factorial."

      git diff | m2 ask "Review this change." -m MiniMaxAI/MiniMax-M2:cheapest
    """
    from ._ask import AskOptions, run

    options = AskOptions(
        prompt=prompt,
        model=model,
        base_url=base_url,
        api_key=api_key,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
        stop=stop or [],
        think=think,
        raw=raw,
        json_output=json_output,
        stream=not no_stream,
        retry_budget=retry_budget,
        timeout=timeout,
    )
    raise typer.Exit(run(options))


def main() -> None:
    """The `m2` entry point."""
    app()
