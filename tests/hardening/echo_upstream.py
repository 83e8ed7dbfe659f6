#!/usr/bin/env python3
"""A tiny TCP echo server on 127.0.0.1:PORT: the upstream for
tests/hardening/run.sh. Every byte a connection sends comes back on it, so an
RTMPT exchange through rtmpgate can check a round trip without a real RTMP
server. Logs one line at start-up."""
import asyncio
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main() -> None:
    port = int(sys.argv[1])
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(f"echo upstream listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
