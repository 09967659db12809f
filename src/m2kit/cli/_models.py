"""`m2 models`: the catalogue as a table, one model's providers with the routing picks, or JSON.

rich is imported only to draw a table; `--json` and a self-hosted server's plain ids skip it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._common import load_config
from ._output import EXIT_FAILURE, EXIT_OK, guarded, new_table, say, show, write, write_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

    from .._catalog import Catalog, Model, Pick, ProviderOffer

_MISSING = "—"
_PICK_NOTE = (
    "Estimated from the catalogue's figures: the router decides on its own, more recent probes,"
    " and skips providers disabled at https://hf.co/settings/inference-providers."
)
_STATUS_STYLES = {"live": "green", "error": "red"}
# Column headers, and how each column is justified; kept short so a table fits 80 columns.
_COLUMNS: dict[str, Literal["left", "right"]] = {
    "provider": "left",
    "status": "left",
    "context": "right",
    "in $/M": "right",
    "out $/M": "right",
    "latency": "right",
    "tok/s": "right",
    "tools": "left",
    "struct": "left",
}
_LEGEND = (
    "Prices in USD per million tokens; latency until the first token; tok/s: throughput;"
    " struct: structured output (a JSON schema). From the router's latest probes."
)


@dataclass(frozen=True)
class ModelsOptions:
    """What `m2 models` was given; None means "not given" (config, then default, applies)."""

    query: str
    base_url: str | None
    api_key: str | None
    refresh: bool
    json_output: bool
    timeout: float | None


def run(options: ModelsOptions) -> int:
    """Run `m2 models`; returns the exit code."""
    return guarded(lambda: _models(options))


def _models(options: ModelsOptions) -> int:
    from .._catalog import find_model, search

    base_url, catalog = _load(options)
    exact = find_model(catalog.models, options.query) if options.query.strip() else None
    chosen = [exact] if exact is not None else search(catalog.models, options.query)

    if options.json_output:
        write_json([dict(model.raw) for model in chosen])
    if not chosen:
        say(_nothing_found(options.query, len(catalog.models), base_url))
        return EXIT_FAILURE
    if options.json_output:
        return EXIT_OK

    if not any(model.providers for model in catalog.models):
        # vLLM and SGLang list what they serve, with no providers or figures to tabulate.
        _show_ids(chosen)
    elif exact is not None and exact.providers:
        _show_model(exact)
    else:
        _show_catalog(chosen)
    return EXIT_OK


def _load(options: ModelsOptions) -> tuple[str, Catalog]:
    from .._auth import resolve_token
    from .._catalog import DEFAULT_CATALOG_TIMEOUT, load_catalog
    from .._request import DEFAULT_BASE_URL

    config = load_config()
    base_url = options.base_url or config.base_url or DEFAULT_BASE_URL
    timeout = options.timeout or config.timeout or DEFAULT_CATALOG_TIMEOUT

    # Resolved for this URL, so a self-hosted server never receives the Hugging Face token.
    token = resolve_token(base_url, options.api_key)
    catalog = load_catalog(base_url, token, refresh=options.refresh, timeout=timeout)
    if catalog.from_cache:
        age = _age(time.time() - catalog.fetched_at)
        note = f"m2: the model list is from the cache, {age} old (--refresh fetches it again)"
        say(note, dim=True)
    return base_url, catalog


def _nothing_found(query: str, count: int, base_url: str) -> str:
    if count == 0:
        return f"m2: the server at {base_url} lists no models."
    plural = "s" if count != 1 else ""
    return f"m2: no model id contains {query.strip()!r} among the {count} model{plural} listed."


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s"
    return f"{seconds / 60:.0f} min"


def _show_ids(models: list[Model]) -> None:
    write("".join(f"{model.id}\n" for model in models))


def _show_model(model: Model) -> None:
    from rich.text import Text

    from .._catalog import pick

    picks = [_pick_line(pick(model, "fastest")), _pick_line(pick(model, "cheapest"))]
    legend = Text(f"{_LEGEND}\n{_PICK_NOTE}", style="dim")
    show(*_model_blocks([model]), *picks, Text(), legend)


def _show_catalog(models: list[Model]) -> None:
    from rich.text import Text

    show(*_model_blocks(models), Text(_LEGEND, style="dim"))


def _model_blocks(models: list[Model]) -> list[RenderableType]:
    """A heading and a provider table per model; the tables share their column widths, so
    they line up as one."""
    from rich.text import Text

    rows = [[_offer_cells(offer) for offer in model.providers] for model in models]
    widths = [
        max([len(name), *(row[index].cell_len for block in rows for row in block)])
        for index, name in enumerate(_COLUMNS)
    ]

    blocks: list[RenderableType] = []
    for model, block in zip(models, rows, strict=True):
        blocks.append(_heading(model))
        if block:
            blocks.append(_table(widths, block))
        else:
            blocks.append(Text("no provider serves it at the moment", style="dim"))
        blocks.append(Text())
    return blocks


def _heading(model: Model) -> RenderableType:
    from rich.text import Text

    owner = f" · owned by {model.owned_by}" if model.owned_by else ""
    count = len(model.providers)
    return Text(model.id, style="bold") + f"{owner} · {count} provider{'s' if count != 1 else ''}"


def _pick_line(choice: Pick) -> RenderableType:
    from rich.text import Text

    line = Text(f":{choice.policy:<9} → ")
    if choice.offer is None or choice.figure is None:
        return line + f"none: {choice.reason}"

    if choice.policy == "fastest":
        figure = f"{_throughput(choice.figure)} tokens/s"
    else:
        figure = f"${_price(choice.figure)} per million output tokens"
    return line + Text(choice.offer.provider, style="bold") + f": {figure}; {choice.reason}"


def _table(widths: list[int], rows: list[list[Text]]) -> Table:
    table = new_table()
    for (name, justify), width in zip(_COLUMNS.items(), widths, strict=True):
        table.add_column(name, justify=justify, min_width=width)
    for row in rows:
        table.add_row(*row)
    return table


def _offer_cells(offer: ProviderOffer) -> list[Text]:
    from rich.text import Text

    status = offer.status or _MISSING
    cells = [
        offer.provider,
        status,
        _figure(offer.context_length, "{:,}".format),
        _figure(offer.input_price, _price),
        _figure(offer.output_price, _price),
        _figure(offer.first_token_latency_ms, lambda ms: f"{ms / 1000:.2f} s"),
        _figure(offer.throughput, _throughput),
        _flag(offer.supports_tools),
        _flag(offer.supports_structured_output),
    ]
    texts = [Text(cell) for cell in cells]
    texts[1].stylize(_STATUS_STYLES.get(status, "yellow"))
    return texts


def _figure(value: float | None, shown: Callable[[float], str]) -> str:
    return _MISSING if value is None else shown(value)


def _price(usd: float) -> str:
    # Two decimals hide the smallest prices (0.015 would read 0.02): give those three figures.
    return f"{usd:.3g}" if 0 < usd < 0.1 else f"{usd:.2f}"


def _throughput(tokens_per_second: float) -> str:
    return f"{tokens_per_second:.0f}" if tokens_per_second >= 10 else f"{tokens_per_second:.1f}"


def _flag(value: bool | None) -> str:
    return _MISSING if value is None else ("yes" if value else "no")
