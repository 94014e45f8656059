#!/usr/bin/env python3
"""Partial-result latency of asr-serve with N concurrent real-time streams, and the most streams it holds.

    .venv/bin/python bench/streaming_latency.py exp/fsdd_lstm_streaming [--streams 1 8 16 32] [--int8]
    .venv/bin/python bench/streaming_latency.py exp/fsdd_lstm_streaming --streams 16 24 32 48 64 --find-max

Starts ``asr-serve MODEL`` (python -m speechrecipe.cli.serve, --workers, --threads 1 per operation,
limits above the largest N) and, for each N, N clients in this process that each stream real
recordings (--audio: files, directories or a wav.scp; default FSDD's test speaker yweweler, the
recordings one after the other with 0.3 s of silence) in 0.2 s chunks of 16-bit PCM, as Vosk's
clients do, paced in real time: chunk k is sent when its audio has "ended", at start + (k+1) x 0.2 s
(the clients start spread over the first 0.2 s). The latency of a chunk is the time from sending it
to receiving the server's reply to it (a partial, or a result at an endpoint); each N runs
--seconds of audio per stream. A stream is held when the 95th percentile stays under --goal-ms
(300); --find-max stops at the first N that is not held. The clients share the machine with the
server (they are light: a send and a receive per 0.2 s each). Record `uptime` beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from speechrecipe.audio import resample
from speechrecipe.inputs import collect_inputs

CHUNK_SECONDS = 0.2
DEFAULT_AUDIO = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"


def load_audio(paths: list[str], rate: int, seconds: float) -> np.ndarray:
    """The recordings one after the other (0.3 s of silence between), repeated to ``seconds``, at ``rate``."""
    pieces = []
    for source in collect_inputs(paths):
        samples, own_rate = source.read()
        pieces += [resample(samples, own_rate, rate), np.zeros(int(0.3 * rate), np.float32)]
    audio = np.concatenate(pieces)
    audio = np.tile(audio, int(np.ceil(seconds * rate / len(audio))))[: int(seconds * rate)]
    return (np.clip(audio, -1, 1) * 32767).astype("<i2")


async def one_stream(uri: str, pcm: np.ndarray, rate: int, start: float, latencies: list) -> None:
    from websockets.asyncio.client import connect

    chunk = int(rate * CHUNK_SECONDS)
    chunks = [pcm[i : i + chunk].tobytes() for i in range(0, len(pcm), chunk)]
    sent = collections.deque()
    async with connect(uri, open_timeout=60) as ws:
        await ws.send(json.dumps({"config": {"sample_rate": rate, "words": 0}}))

        async def receive():
            for _ in chunks:
                await ws.recv()
                latencies.append(time.perf_counter() - sent.popleft())

        receiver = asyncio.create_task(receive())
        for k, data in enumerate(chunks):
            await asyncio.sleep(max(0.0, start + (k + 1) * CHUNK_SECONDS - time.perf_counter()))
            sent.append(time.perf_counter())
            await ws.send(data)
        await receiver
        await ws.send('{"eof": 1}')
        await ws.recv()


async def run_streams(uri: str, pcm: np.ndarray, rate: int, streams: int) -> np.ndarray:
    latencies: list[float] = []
    begin = time.perf_counter() + 1.0
    await asyncio.gather(
        *(one_stream(uri, pcm, rate, begin + CHUNK_SECONDS * i / streams, latencies) for i in range(streams))
    )
    return np.array(latencies) * 1000


def start_server(args, log: Path) -> tuple[subprocess.Popen, str, int]:
    """asr-serve in a process of its own: the process, its address and the model's sample rate."""
    limit = max(args.streams)
    command = [sys.executable, "-m", "speechrecipe.cli.serve", args.model, "--port", "0", "--threads", "1"]
    command += ["--workers", str(args.workers), "--max-streams", str(limit), "--max-queue", "0"]
    command += ["--int8"] if args.int8 else []
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
        )
    deadline = time.monotonic() + 120
    while not (found := re.search(r"listening on (ws://\S+)/ ", log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"asr-serve did not start:\n{log.read_text()}")
        time.sleep(0.2)
    rate = int(re.search(r"model at (\d+) Hz", log.read_text()).group(1))
    return process, found.group(1), rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per stream for each N")
    parser.add_argument(
        "--audio",
        nargs="+",
        default=[str(DEFAULT_AUDIO / f"{d}_yweweler_{t}.wav") for t in range(5) for d in range(10)],
    )
    parser.add_argument("--int8", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--goal-ms", type=float, default=300.0)
    parser.add_argument("--find-max", action="store_true", help="stop at the first N whose p95 misses the goal")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        process, uri, rate = start_server(args, Path(tmp) / "serve.log")
        try:
            pcm = load_audio(args.audio, rate, args.seconds)
            load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
            print(f"{args.model} ({'int8' if args.int8 else 'float'}), {args.workers} worker(s); before: {load}")
            print("streams  replies  median_ms  p95_ms  max_ms  held")
            held = 0
            for streams in args.streams:
                ms = asyncio.run(run_streams(uri, pcm, rate, streams))
                p95 = float(np.percentile(ms, 95))
                ok = p95 < args.goal_ms
                print(
                    f"{streams:7d}  {len(ms):7d}  {np.median(ms):9.1f}  {p95:6.1f}  {ms.max():6.0f}  {'yes' if ok else 'no'}"
                )
                held = streams if ok else held
                if args.find_max and not ok:
                    break
            print(f"most streams held (p95 < {args.goal_ms:g} ms) among those tried: {held}")
            print("after: " + subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())
        finally:
            process.terminate()
            process.wait(timeout=60)


if __name__ == "__main__":
    main()
