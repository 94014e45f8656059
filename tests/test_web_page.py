"""The page asr-serve serves at / (speechrecipe/web/index.html), in headless Chromium whose fake microphone
plays a real FSDD recording (--use-file-for-fake-audio-capture): the page captures it with Web Audio,
streams it to the server, and shows the partial and final text. Chromium is driven through its DevTools
protocol (over the websockets package the server uses); it is found or installed as test_report.py does."""

import asyncio
import base64
import itertools
import json
import re
import subprocess
import time

import numpy as np
import pytest
import soundfile
from test_report import chromium, headless_flags  # noqa: F401 - chromium: the fixture (installed when missing)
from test_server import ServerProcess
from test_transcribe import fsdd_wav

from speechrecipe.audio import read_audio
from speechrecipe.recognizer import Recognizer
from speechrecipe.transcriber import Transcriber

websockets = pytest.importorskip("websockets", reason="asr-serve needs websockets (pip install -r requirements.txt)")


class DevTools:
    """The few DevTools-protocol calls the test needs, on one page target."""

    def __init__(self, ws, session: str):
        self.ws, self.session, self.ids = ws, session, itertools.count(1)

    @classmethod
    async def attach(cls, browser_uri: str, ws_connect, url: str):
        """Attach to the page showing ``url`` (chromium may still be loading it)."""
        ws = await ws_connect(browser_uri, max_size=1 << 26)
        tools = cls(ws, "")
        deadline = time.monotonic() + 30
        while True:
            targets = (await tools.call("Target.getTargets"))["targetInfos"]
            page = next((t for t in targets if t["type"] == "page" and t["url"].startswith(url)), None)
            if page is not None:
                break
            assert time.monotonic() < deadline, targets
            await asyncio.sleep(0.1)
        attached = await tools.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        tools.session = attached["sessionId"]
        return tools

    async def call(self, method: str, **params) -> dict:
        number = next(self.ids)
        message = {"id": number, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        await self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == number:
                assert "error" not in reply, reply
                return reply["result"]

    async def evaluate(self, expression: str, gesture: bool = False):
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True, userGesture=gesture
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")


def start_chromium(browser: str, url: str, audio, profile) -> tuple[subprocess.Popen, str]:
    """Headless chromium on ``url`` with ``audio`` as its microphone; its DevTools address."""
    log = profile / "chromium.log"
    command = [
        browser,
        *headless_flags(profile),
        "--remote-debugging-port=0",
        "--use-fake-ui-for-media-stream",  # allow the microphone without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={audio}",  # the microphone plays this file, in a loop
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1000,700",
        url,
    ]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=profile)
    deadline = time.monotonic() + 60
    while not (found := re.search(r"DevTools listening on (ws://\S+)", log.read_text())):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    return process, found.group(1)


def test_the_page_shows_what_the_microphone_says(chromium, streaming_exp, fsdd_recordings, tmp_path):  # noqa: F811
    from websockets.asyncio.client import connect

    # The microphone: one real recording of a digit then 1.5 s of silence, looped by chromium.
    samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, 0, "george", 5)))
    loop = np.concatenate([samples, np.zeros(int(1.5 * rate), np.float32)])
    soundfile.write(tmp_path / "microphone.wav", loop, rate, subtype="PCM_16")
    expected = Transcriber(Recognizer.load(streaming_exp), method="greedy").decode_text(loop, rate)
    assert expected, "the tiny model recognizes nothing in the recording: the check would mean nothing"

    server = ServerProcess(streaming_exp, tmp_path / "serve.log", "--trailing-silence", 0.8)
    (tmp_path / "profile").mkdir()
    url = f"http://127.0.0.1:{server.port}/"
    browser, devtools_uri = start_chromium(chromium, url, tmp_path / "microphone.wav", tmp_path / "profile")

    async def drive() -> dict:
        tools = await DevTools.attach(devtools_uri, connect, url)
        deadline = time.monotonic() + 30
        while await tools.evaluate("typeof window.start") != "function":  # the page's script has run
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await tools.evaluate("start()", gesture=True)
        seen = {"partials": set()}
        while time.monotonic() < deadline:
            state = await tools.evaluate("window.recognition")
            seen["partials"].add(state["partial"])
            if state["error"] or len([t for t in state["finals"] if t]) >= 3:
                break
            await asyncio.sleep(0.05)
        await tools.evaluate("stop()", gesture=True)
        await asyncio.sleep(1.0)
        seen["state"] = await tools.evaluate("window.recognition")
        seen["text"] = await tools.evaluate("document.body.innerText")
        shot = await tools.call("Page.captureScreenshot", format="png")
        seen["screenshot"] = shot["data"]
        await tools.ws.close()
        return seen

    try:
        seen = asyncio.run(drive())
    finally:
        browser.terminate()
        browser.wait(timeout=30)
        assert server.stop() == 0
    state = seen["state"]
    assert state["error"] is None, state
    finals = [t for t in state["finals"] if t]
    assert len(finals) >= 3, (state, server.text()[-2000:])
    # The first utterance is the recording as the file begins (its text, as offline), the next ones each
    # a loop of it heard from some point in its silence (the tiny model's text then varies); the page
    # shows every result the server sent, in order, and partials on the way.
    assert expected in finals, (finals, expected)
    logged = re.findall(r"stream 1 utterance \d+: .* ended by \w+: '(.*)'", server.text())
    assert [t for t in logged if t][: len(finals)] == finals
    assert any(seen["partials"]), seen["partials"]
    for text in finals:
        assert text in seen["text"]  # on the screen, not only in the page's state
    assert "Stopped." in seen["text"]
    (tmp_path / "page.png").write_bytes(base64.b64decode(seen["screenshot"]))  # for a person to look at
