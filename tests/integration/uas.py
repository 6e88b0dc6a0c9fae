"""A minimal user agent server for node tests: answers every request with 200 OK."""

from __future__ import annotations

import asyncio

from intrafed.sip import Request, StreamFramer, parse_message
from intrafed.sip.responses import make_response


async def answer_200(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one connection: every request framed from it gets a 200."""
    framer = StreamFramer()
    try:
        while data := await reader.read(65536):
            framer.receive_data(data)
            while (frame := framer.next_frame()) is not None:
                request = parse_message(frame, stream=True)
                assert isinstance(request, Request)
                writer.write(make_response(request, 200, to_tag="uas").to_bytes())
    except ConnectionError:
        pass
    finally:
        writer.close()
