"""The benchmark's anchor: the plain openai-SDK script a user would write to stream a reply.

    python benchmarks/openai_stream.py BASE_URL PROMPT

It prints `delta.content` as it arrives, exactly as received (thinking and tags included), then a
newline. It does none of m2's work on top (no thinking split, no usage or finish checks), so it is
a lower bound on what a streaming client built on the SDK costs.
"""

from __future__ import annotations

import sys

import openai

MODEL = "MiniMaxAI/MiniMax-M2"


def main(base_url: str, prompt: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="x")
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices:
            text = chunk.choices[0].delta.content
            if text:
                print(text, end="", flush=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
