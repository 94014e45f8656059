"""``asr-serve MODEL [--host 127.0.0.1] [--port 2700]``: recognize live audio over WebSocket, Vosk's protocol.

    asr-serve exp/fsdd_lstm_streaming
    asr-serve exp/ljspeech_lstm_streaming/export/bundle --port 2700 --max-streams 16 --int8

The protocol, the limits and the page at ``/`` are described in :mod:`speechrecipe.server`,
streaming and endpointing in :mod:`speechrecipe.streaming` and :mod:`speechrecipe.endpoint`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys

import torch

from ..endpoint import EndpointConfig
from ..recognizer import Recognizer
from ..server import RecognitionServer, ServerConfig
from . import setup_logging

log = logging.getLogger("asr-serve")


def build_parser() -> argparse.ArgumentParser:
    defaults, rules = ServerConfig(), EndpointConfig()
    parser = argparse.ArgumentParser(
        prog="asr-serve",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Recognize live audio with a trained model: a WebSocket server speaking the Vosk server "
        "protocol (Vosk's clients work unchanged), and a page at http://HOST:PORT/ that recognizes the "
        "browser's microphone.",
        epilog="""\
MODEL is an experiment directory (exp/<tag>), a final.pt, or a bundle (asr-export). A streaming
model (am.model.bidirectional: false, am.cmvn: online; conf/fsdd_streaming.yaml) carries its
state from chunk to chunk; any other is served by decoding the utterance's audio so far again
at every chunk, which costs more as the utterance grows (--max-utterance bounds it).

Protocol: an optional text message {"config": {"sample_rate": N, "words": 1}}, then binary
16-bit little-endian mono PCM at any rate; one reply per binary message, {"partial": "..."}
or, when an endpoint ends an utterance, {"result": [{"conf", "end", "start", "word"}...],
"text": "..."}; {"eof": 1} gets the final result and closes.

examples:
  asr-serve exp/fsdd_lstm_streaming
  python ../shared/tools/vosk-websocket-client/test.py recording.wav     # Vosk's own client
  asr-serve exp/fsdd_blstm_mc --max-utterance 10 --port 2701""",
    )
    parser.add_argument("model", metavar="MODEL", help="experiment directory, final.pt or model bundle")
    parser.add_argument("--host", default=defaults.host, help="address to listen on (default: %(default)s)")
    options = [  # flag, type, default, what it sets
        ("--port", int, defaults.port, "port (0: any free one)"),
        ("--max-streams", int, defaults.max_streams, "connections recognized at once"),
        ("--max-queue", int, defaults.max_queue, "connections waiting for a free stream; more are refused (HTTP 503)"),
        ("--queue-timeout", float, defaults.queue_timeout, "seconds a connection waits before 1013 'try again later'"),
        ("--workers", int, defaults.workers, "threads running the network"),
        ("--threads", int, 1, "PyTorch threads per operation"),
        ("--idle-timeout", float, defaults.idle_timeout, "seconds without a message before a connection is closed"),
        ("--sample-rate", int, None, "rate of clients that send no config (default: the model's rate)"),
        ("--trailing-silence", float, rules.trailing_silence, "end an utterance after this much blank following text"),
        ("--silence-timeout", float, rules.silence_timeout, "end an utterance in which nothing was recognized"),
        ("--max-utterance", float, rules.max_utterance, "end an utterance this long, whatever it holds"),
    ]
    for flag, kind, default, what in options:
        unit = " (seconds; 0: never)" if flag in ("--trailing-silence", "--silence-timeout", "--max-utterance") else ""
        shown = "" if default is None else " (default: %(default)s)"
        parser.add_argument(flag, type=kind, default=default, help=what + unit + shown)
    parser.add_argument(
        "--int8", action="store_true", help="run the LSTM and linear layers with dynamic int8 quantization"
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per utterance is ours; not per connection
    torch.set_num_threads(args.threads)
    try:
        endpoint = EndpointConfig(args.trailing_silence, args.silence_timeout, args.max_utterance)
        settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServerConfig) if f.name != "endpoint"}
        config = ServerConfig(**settings, endpoint=endpoint)
        recognizer = Recognizer.load(args.model, quantize=args.int8)
        server = RecognitionServer(recognizer, config)
    except Exception as e:  # noqa: BLE001 - a model or setting that cannot be used ends the run with one line
        print(f"asr-serve: error: {e}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve_until_signalled(server))
    except OSError as e:  # the port is taken, or the address is not this machine's
        print(f"asr-serve: error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    return 0


async def serve_until_signalled(server: RecognitionServer) -> None:
    """Serve until SIGTERM or SIGINT, then close every connection (1001 'going away') and return."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda s=signum: stop.done() or stop.set_result(s))
    await server.run(stop)


if __name__ == "__main__":
    sys.exit(main())
