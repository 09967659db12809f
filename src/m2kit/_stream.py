"""The objects `stream()` returns: iterators of events that close their connection when left."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator
    from types import TracebackType

    from ._types import Reply, StreamEvent


class ChatStream:
    """The events of one streamed reply, ending with `Done`.

    Iterate it directly, or use it as a context manager so that leaving early (a `break`, an
    exception) closes the connection at once rather than when the object is collected.
    """

    def __init__(
        self,
        events: Generator[StreamEvent, None, None],
        partial: Callable[[], Reply | None] | None = None,
    ) -> None:
        self._events = events
        self._partial = partial

    def partial(self) -> Reply | None:
        """What has arrived so far, as a reply (never a complete answer), or None before any."""
        return self._partial() if self._partial is not None else None

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> StreamEvent:
        return next(self._events)

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._events.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncChatStream:
    """The asynchronous twin of `ChatStream`: `async for`, and `async with` to close early."""

    def __init__(
        self,
        events: AsyncGenerator[StreamEvent, None],
        partial: Callable[[], Reply | None] | None = None,
    ) -> None:
        self._events = events
        self._partial = partial

    def partial(self) -> Reply | None:
        """What has arrived so far, as a reply (never a complete answer), or None before any."""
        return self._partial() if self._partial is not None else None

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Stop reading and close the connection."""
        await self._events.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
