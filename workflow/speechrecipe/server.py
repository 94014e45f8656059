"""A WebSocket server that speaks the Vosk server protocol, and the browser page it serves.

The protocol (alphacep/vosk-server, ``websocket/asr_server.py``), so that Vosk's clients work
unchanged:

- the client may first send a text message ``{"config": {"sample_rate": N, "words": 0|1}}``
  (``phrase_list`` and ``max_alternatives`` are accepted and ignored);
- then binary messages of 16-bit little-endian mono PCM at that rate (any rate: it is resampled
  to the model's; a message may hold an odd number of bytes, the odd byte waits for the next);
- after each binary message the server answers one text message: ``{"partial": "..."}`` while
  an utterance goes on, or ``{"result": [{"conf", "end", "start", "word"}...], "text": "..."}``
  when an endpoint ended one (:mod:`speechrecipe.endpoint`); a new utterance then starts on the
  same connection;
- ``{"eof": 1}`` gets the final result, then the server closes the connection; ``{"reset": 1}``
  gets the result of the utterance so far and goes on.

Anything else ends the connection with a close code and a reason that says what was wrong:
a text message that is not one of these (1007), a connection idle for ``idle_timeout`` (1000),
no free stream after waiting ``queue_timeout`` (1013). A client arriving when ``max_streams``
streams are being recognized and ``max_queue`` connections already wait is refused at once with
HTTP 503. A plain HTTP GET of ``/`` returns the page ``web/index.html`` (microphone capture in
the browser, partial and final text on screen).

The network runs in a thread pool (``workers`` threads; PyTorch releases the GIL in its
kernels), never on the event loop, so one slow chunk delays no other connection's messages.
Each connection's messages are handled in order, one at a time. Every ended utterance is logged
with its real-time factor.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from .endpoint import EndpointConfig
from .recognizer import Recognizer
from .streaming import StreamingRecognizer, UtteranceResult, is_streamable

log = logging.getLogger(__name__)

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 192000
CLOSE_NORMAL, CLOSE_INVALID_DATA, CLOSE_INTERNAL_ERROR, CLOSE_TRY_AGAIN_LATER = 1000, 1007, 1011, 1013


class ProtocolError(ValueError):
    """A client sent something the protocol does not allow; the message says what to send instead."""


@dataclass(frozen=True)
class ServerConfig:
    """How the server listens and how much it takes on."""

    host: str = "127.0.0.1"
    port: int = 2700
    max_streams: int = 16  # connections recognized at once
    max_queue: int = 16  # connections waiting for a free stream; beyond them a client is refused (HTTP 503)
    queue_timeout: float = 10.0  # seconds a connection waits for a free stream before it is refused
    workers: int = 2  # threads running the network
    idle_timeout: float = 60.0  # seconds without a message before a connection is closed
    sample_rate: int | None = None  # of clients that send no config; None: the model's rate
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)


def vosk_result(result: UtteranceResult, words: bool) -> dict:
    """An ended utterance as Vosk's server sends it."""
    if words and result.words:
        timed = [
            {"conf": round(conf, 6), "end": round(end, 3), "start": round(start, 3), "word": word}
            for word, start, end, conf in result.words
        ]
        return {"result": timed, "text": result.text}
    return {"text": result.text}


class Session:
    """The protocol state of one connection: its config, its recognizer (from the first audio on)."""

    def __init__(self, server: RecognitionServer, number: int):
        self.server = server
        self.number = number
        self.sample_rate = server.config.sample_rate or server.recognizer.feature_config.sample_rate
        self.words = True
        self.stream: StreamingRecognizer | None = None
        self.odd_byte = b""
        self.utterances = 0
        self.audio_seconds = 0.0

    def configure(self, config) -> None:
        if not isinstance(config, dict):
            raise ProtocolError('"config" must be an object, e.g. {"config": {"sample_rate": 16000}}')
        if "sample_rate" in config:
            rate = config["sample_rate"]
            if not isinstance(rate, int | float) or not math.isfinite(rate) or rate != int(rate):
                raise ProtocolError(f"sample_rate {rate!r}: give a whole number of samples per second")
            if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
                raise ProtocolError(f"sample_rate {rate:g}: use {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")
            if self.stream is not None and int(rate) != self.sample_rate:
                raise ProtocolError("sample_rate can only be set before the first audio")
            self.sample_rate = int(rate)
        if "words" in config:
            self.words = bool(config["words"])

    def accept_audio(self, data: bytes) -> dict:
        """One binary message: 16-bit little-endian PCM. Runs in the worker pool."""
        data = self.odd_byte + data
        whole = len(data) - len(data) % 2
        self.odd_byte = data[whole:]
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0
        stream = self._stream()
        self.audio_seconds += len(samples) / self.sample_rate
        if stream.accept_waveform(samples):
            return self._ended(stream.result())
        return {"partial": stream.partial()}

    def finish(self, why: str) -> dict:
        """``eof`` (the end of the stream) or ``reset``: the result of the utterance going on. Runs in the pool."""
        return self._ended(self._stream().final_result(why))

    def _stream(self) -> StreamingRecognizer:
        if self.stream is None:
            self.stream = StreamingRecognizer(
                self.server.recognizer, self.sample_rate, self.server.config.endpoint, self.words
            )
        self.stream.words = self.words
        return self.stream

    def _ended(self, result: UtteranceResult) -> dict:
        self.utterances += 1
        log.info(
            "stream %d utterance %d: %.2f s of audio from %.2f s, %.3f s of compute, real-time factor %.3f, "
            "ended by %s: %r",
            self.number,
            self.utterances,
            result.seconds,
            result.start,
            result.compute_seconds,
            result.real_time_factor,
            result.endpoint,
            result.text,
        )
        return vosk_result(result, self.words)


class RecognitionServer:
    """The Vosk-protocol server around one loaded model (see the module's description)."""

    def __init__(self, recognizer: Recognizer, config: ServerConfig | None = None):
        self.recognizer = recognizer
        self.config = config or ServerConfig()
        if self.config.max_streams < 1 or self.config.max_queue < 0 or self.config.workers < 1:
            raise ValueError("max_streams and workers must be at least 1, max_queue at least 0")
        self.pool = ThreadPoolExecutor(self.config.workers, thread_name_prefix="recognize")
        self.slots = asyncio.Semaphore(self.config.max_streams)
        self.active = 0
        self.waiting = 0
        self.connections = 0
        self.page = resources.files("speechrecipe").joinpath("web/index.html").read_bytes()

    def describe(self) -> str:
        kind = "streaming" if is_streamable(self.recognizer) else "decoded again at every chunk"
        return (
            f"{kind} model at {self.recognizer.feature_config.sample_rate} Hz; up to {self.config.max_streams} "
            f"streams at once, {self.config.max_queue} waiting, {self.config.workers} worker thread(s)"
        )

    async def run(self, stop: asyncio.Future, started=None) -> None:
        """Serve until ``stop`` is done; ``started(port)`` is called once listening."""
        from websockets.asyncio.server import serve

        try:
            async with serve(
                self.handle,
                self.config.host,
                self.config.port,
                process_request=self.process_request,
                max_size=1 << 20,
            ) as server:
                port = next(iter(server.sockets)).getsockname()[1]
                log.info(
                    "listening on ws://%s:%d/ (page at http://%s:%d/): %s",
                    *(self.config.host, port) * 2,
                    self.describe(),
                )
                if started is not None:
                    started(port)
                await stop
                log.info("stopping: closing %d connection(s)", self.active + self.waiting)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        log.info("stopped")

    def process_request(self, connection, request):
        """Plain HTTP: the page at ``/``; a WebSocket beyond every limit: refused with 503."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            if request.path.split("?")[0] not in ("/", "/index.html"):
                return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found: the page is at /\n")
            response = connection.respond(http.HTTPStatus.OK, "")
            response.body = self.page
            del response.headers["Content-Type"], response.headers["Content-Length"]
            response.headers["Content-Type"] = "text/html; charset=utf-8"
            response.headers["Content-Length"] = str(len(self.page))
            return response
        if self.active + self.waiting >= self.config.max_streams + self.config.max_queue:
            log.warning("refused a client: %d streams busy and %d waiting", self.active, self.waiting)
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                f"Server busy: {self.active} streams are being recognized and {self.waiting} wait "
                f"(limits {self.config.max_streams} and {self.config.max_queue}); try again later.\n",
            )
        return None

    async def handle(self, connection) -> None:
        self.connections += 1
        number = self.connections
        if not await self._take_slot(connection, number):
            return
        self.active += 1
        session = Session(self, number)
        try:
            await self._converse(connection, session)
        except Exception as e:  # noqa: BLE001 - whatever went wrong, it ends this stream only
            await self._ended_badly(connection, session, e)
        finally:
            self.active -= 1
            self.slots.release()
            if connection.state.name != "CLOSED":
                await connection.close()

    async def _take_slot(self, connection, number: int) -> bool:
        self.waiting += 1
        try:
            await asyncio.wait_for(self.slots.acquire(), self.config.queue_timeout)
            return True
        except TimeoutError:
            log.warning("stream %d refused: no free stream after %g s", number, self.config.queue_timeout)
            await connection.close(
                CLOSE_TRY_AGAIN_LATER,
                f"server busy: no free stream after {self.config.queue_timeout:g} s; try again later",
            )
            return False
        finally:
            self.waiting -= 1

    async def _converse(self, connection, session: Session) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await asyncio.wait_for(connection.recv(), self.config.idle_timeout)
            except TimeoutError:
                log.info("stream %d closed: no message for %g s", session.number, self.config.idle_timeout)
                await connection.close(CLOSE_NORMAL, f"idle for {self.config.idle_timeout:g} s")
                return
            if isinstance(message, bytes):
                reply = await loop.run_in_executor(self.pool, session.accept_audio, message)
                await connection.send(json.dumps(reply))
                continue
            command = parse_text_message(message)
            if "config" in command:
                session.configure(command["config"])
            if command.get("eof") or command.get("reset"):
                why = "eof" if command.get("eof") else "reset"
                reply = await loop.run_in_executor(self.pool, session.finish, why)
                await connection.send(json.dumps(reply))
                if why == "eof":
                    return

    async def _ended_badly(self, connection, session: Session, error: Exception) -> None:
        from websockets.exceptions import ConnectionClosed

        if isinstance(error, ConnectionClosed):
            log.info(
                "stream %d: the client left after %.2f s of audio (%s)", session.number, session.audio_seconds, error
            )
        elif isinstance(error, ProtocolError):
            log.warning("stream %d closed: %s", session.number, error)
            await connection.close(CLOSE_INVALID_DATA, str(error)[:120])
        else:
            log.exception("stream %d failed", session.number)
            await connection.close(CLOSE_INTERNAL_ERROR, f"internal error: {error}"[:120])


def parse_text_message(message: str) -> dict:
    """A text message of the protocol as a dict; anything else is a ProtocolError saying what is allowed."""
    try:
        command = json.loads(message)
    except ValueError:
        command = None
    if not isinstance(command, dict) or not ({"config", "eof", "reset"} & set(command)):
        raise ProtocolError(
            'text messages are JSON: {"config": {"sample_rate": N}}, {"eof": 1} or {"reset": 1}; audio is binary'
        )
    return command
