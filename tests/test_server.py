"""asr-serve (speechrecipe.server, cli/serve.py) as its clients see it: the Vosk protocol on real FSDD
recordings with a tiny streaming model trained here, Vosk's own client unchanged, clients that misbehave,
the limits on streams, and SIGTERM. The server runs as a separate process, as a user starts it."""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_transcribe import fsdd_wav

from conftest import ROOT
from speechrecipe.audio import read_audio, resample
from speechrecipe.recognizer import Recognizer
from speechrecipe.transcriber import Transcriber

websockets = pytest.importorskip("websockets", reason="asr-serve needs websockets (pip install -r requirements.txt)")
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

VOSK_CLIENT = ROOT.parent / "shared" / "tools" / "vosk-websocket-client"
ASR_SERVE = Path(sys.executable).with_name("asr-serve")
CHUNK_SECONDS = 0.2  # what Vosk's clients send per message


class ServerProcess:
    """``python -m speechrecipe.cli.serve MODEL --port 0 ...`` with its log in a file; stopped by SIGTERM."""

    def __init__(self, model, log: Path, *args):
        self.log = log
        command = [sys.executable, "-m", "speechrecipe.cli.serve", str(model), "--port", "0", *map(str, args)]
        with open(log, "w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not (found := re.search(r"listening on ws://127\.0\.0\.1:(\d+)/", log.read_text())):
            assert self.process.poll() is None, f"asr-serve exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"asr-serve did not start:\n{log.read_text()}"
            time.sleep(0.1)
        self.port = int(found.group(1))
        self.uri = f"ws://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def text(self) -> str:
        return self.log.read_text()


def pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


async def converse(uri, messages, close_after=False) -> list:
    """Send each message (bytes: one reply awaited; str: none, but '{"eof"...' awaits the final); the replies."""
    replies = []
    async with connect(uri) as ws:
        for message in messages:
            await ws.send(message)
            if isinstance(message, bytes) or '"eof"' in message or '"reset"' in message:
                replies.append(json.loads(await ws.recv()))
        if close_after:
            await ws.close()
    return replies


def vosk_messages(samples: np.ndarray, rate: int, chunk_bytes: int | None = None, config: dict | None = None) -> list:
    """What Vosk's test.py sends: the config, 0.2 s chunks of 16-bit PCM, eof."""
    data = pcm(samples)
    size = chunk_bytes or 2 * int(rate * CHUNK_SECONDS)
    config = {"sample_rate": rate} if config is None else config
    return [json.dumps({"config": config}), *[data[i : i + size] for i in range(0, len(data), size)], '{"eof" : 1}']


@pytest.fixture(scope="module")
def offline(streaming_exp):
    return Transcriber(Recognizer.load(streaming_exp), method="greedy")


@pytest.fixture(scope="module")
def server(streaming_exp, tmp_path_factory):
    process = ServerProcess(streaming_exp, tmp_path_factory.mktemp("serve") / "serve.log", "--idle-timeout", 2)
    yield process
    assert process.stop() == 0, process.text()


def test_a_vosk_client_gets_partials_and_the_final_result_of_real_recordings(server, offline, fsdd_recordings):
    texts = []
    for digit, speaker, take in [(0, "george", 5), (4, "jackson", 7), (8, "george", 9), (6, "nicolas", 5)]:
        samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, digit, speaker, take)))
        messages = vosk_messages(samples, rate)
        replies = asyncio.run(converse(server.uri, messages))
        *partials, final = replies
        assert len(partials) == len(messages) - 2  # one reply per binary message
        assert all(set(r) == {"partial"} for r in partials)
        expected = offline.decode_text(samples, rate)
        assert final["text"] == expected
        words = final.get("result", [])
        assert [w["word"] for w in words] == expected.split()
        for w in words:
            assert set(w) == {"conf", "end", "start", "word"}
            assert 0 <= w["start"] <= w["end"] <= len(samples) / rate + 0.01 and 0 < w["conf"] <= 1
        texts.append(expected)
    assert sum(bool(t) for t in texts) >= 3  # the model says something: the comparison means something
    # One log line per utterance, with its real-time factor.
    assert len(re.findall(r"utterance 1: .* real-time factor [\d.]+, ended by eof", server.text())) >= 4


def test_another_rate_odd_byte_counts_and_no_config(server, offline, fsdd_recordings):
    samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, 3, "jackson", 8)))
    at_16k = resample(samples, rate, 16000)
    replies = asyncio.run(converse(server.uri, vosk_messages(at_16k, 16000)))
    assert replies[-1]["text"] == offline.decode_text(at_16k, 16000)
    # Messages of an odd number of bytes: a sample split between two messages is put together again.
    expected = offline.decode_text(samples, rate)
    replies = asyncio.run(converse(server.uri, vosk_messages(samples, rate, chunk_bytes=1001)))
    assert replies[-1]["text"] == expected and all("partial" in r for r in replies[:-1])
    # No config: the model's rate; and "words": 0 gives the text alone.
    messages = vosk_messages(samples, rate, config={"words": 0})
    assert asyncio.run(converse(server.uri, messages[1:]))[-1]["text"] == expected
    assert asyncio.run(converse(server.uri, messages))[-1] == {"text": expected}


def test_an_endpoint_ends_an_utterance_and_the_next_starts_on_the_same_connection(server, fsdd_recordings):
    pieces = []
    for digit in (1, 9):
        samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, digit, "george", 6)))
        pieces += [samples, np.zeros(int(2.0 * rate), np.float32)]
    replies = asyncio.run(converse(server.uri, vosk_messages(np.concatenate(pieces), rate)))
    ended = [r for r in replies[:-1] if "text" in r]
    assert len(ended) >= 2 and all(r["text"] for r in ended[:2])  # each digit ended by its silence
    first, second = ended[0]["result"][0], ended[1]["result"][0]
    assert second["start"] > first["end"] + 1.0  # times run on over the connection
    assert re.search(r"utterance 2: .* ended by trailing_silence", server.text())


def test_clients_that_misbehave_end_only_their_own_stream(server, offline, fsdd_recordings):
    async def closed_with(messages) -> tuple[int, str]:
        async with connect(server.uri) as ws:
            for message in messages:
                await ws.send(message)
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            return ws.close_code, ws.close_reason

    code, reason = asyncio.run(closed_with(["hello, is this the speech server?"]))
    assert code == 1007 and "text messages are JSON" in reason
    code, reason = asyncio.run(closed_with(['{"config": {"sample_rate": "fast"}}']))
    assert code == 1007 and "sample_rate" in reason
    code, reason = asyncio.run(closed_with([]))  # nothing at all: closed after --idle-timeout
    assert code == 1000 and "idle" in reason
    # Random bytes are audio like any other: partials, then a final result.
    noise = np.random.default_rng(0).bytes(16001)
    replies = asyncio.run(converse(server.uri, [noise[:8000], noise[8000:], '{"eof": 1}']))
    assert "partial" in replies[0] and "partial" in replies[1] and "text" in replies[2]

    async def leave_mid_stream():
        ws = await connect(server.uri)
        samples, _ = read_audio(str(fsdd_wav(fsdd_recordings, 5, "george", 5)))
        await ws.send(pcm(samples[:1600]))
        ws.transport.abort()  # gone without a closing handshake

    asyncio.run(leave_mid_stream())
    samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, 2, "jackson", 9)))
    assert asyncio.run(converse(server.uri, vosk_messages(samples, rate)))[-1]["text"] == offline.decode_text(
        samples, rate
    )
    assert "the client left after" in server.text() and "Traceback" not in server.text()


def test_clients_beyond_the_limits_are_refused_clearly(streaming_exp, tmp_path):
    busy = ServerProcess(
        streaming_exp, tmp_path / "busy.log", "--max-streams", 1, "--max-queue", 1, "--queue-timeout", 1
    )

    async def scenario():
        first = await connect(busy.uri)
        await first.send(pcm(np.zeros(1600, np.float32)))
        assert "partial" in json.loads(await first.recv())  # the one stream is taken
        waiting = await connect(busy.uri)  # waits for the stream...
        await asyncio.sleep(0.3)
        with pytest.raises(InvalidStatus) as refused:  # ...and the queue is full: HTTP 503 at once
            await connect(busy.uri)
        assert refused.value.response.status_code == 503 and b"Server busy" in refused.value.response.body
        with pytest.raises(ConnectionClosed):
            await waiting.recv()  # closed after --queue-timeout, saying why
        assert waiting.close_code == 1013 and "server busy" in waiting.close_reason
        await first.close()
        # The stream is free again.
        assert "partial" in (await converse(busy.uri, [pcm(np.zeros(1600, np.float32))]))[0]

    try:
        asyncio.run(scenario())
    finally:
        assert busy.stop() == 0


def test_sigterm_closes_the_connections_and_stops_cleanly(streaming_exp, tmp_path):
    process = ServerProcess(streaming_exp, tmp_path / "term.log")

    async def connected_then_terminated():
        async with connect(process.uri) as ws:
            await ws.send(pcm(np.zeros(1600, np.float32)))
            await ws.recv()
            process.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert asyncio.run(connected_then_terminated()) == 1001  # going away
    assert process.process.wait(timeout=60) == 0
    assert process.text().rstrip().endswith("speechrecipe.server: stopped"), process.text()


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_vosks_own_client_unchanged(streaming_exp, offline, fsdd_recordings, tmp_path):
    if not (VOSK_CLIENT / "test.py").is_file():
        pytest.skip(f"Vosk's client not found at {VOSK_CLIENT} (the shared tools folder beside the project)")
    if not port_is_free(2700):
        pytest.skip("port 2700, where Vosk's test.py connects, is in use")
    process = ServerProcess(streaming_exp, tmp_path / "vosk.log", "--port", 2700)  # the last --port counts
    try:
        for script in ("test.py", "test_words.py"):
            wav = fsdd_wav(fsdd_recordings, 7, "yweweler", 3)
            result = subprocess.run(
                [sys.executable, str(VOSK_CLIENT / script), str(wav)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env={**os.environ, "PYTHONPATH": ""},
            )
            assert result.returncode == 0, result.stderr
            replies = [json.loads(line) for line in result.stdout.splitlines()]
            samples, rate = read_audio(str(wav))
            assert len(replies) == len(range(0, len(samples), int(rate * CHUNK_SECONDS))) + 1
            assert all("partial" in r for r in replies[:-1])
            assert replies[-1]["text"] == offline.decode_text(samples, rate)
            assert ("result" in replies[-1]) == (script == "test.py" and bool(replies[-1]["text"]))
    finally:
        assert process.stop() == 0


def test_the_installed_asr_serve_script(streaming_exp, tmp_path):
    if not ASR_SERVE.exists():
        pytest.skip(f"{ASR_SERVE} is not installed (pip install --no-deps -e .)")
    result = subprocess.run([str(ASR_SERVE), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "Vosk" in result.stdout
    result = subprocess.run([str(ASR_SERVE), str(tmp_path / "nothing")], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "not an experiment directory" in result.stderr
