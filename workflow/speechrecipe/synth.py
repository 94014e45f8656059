"""Text to speech with eSpeak NG, driven through ctypes.

The shared library and its voice data come from the ``espeakng-loader`` pip
package, so synthesis needs no system package and no network. Samples reach
Python through a synth callback in synchronous mode: nothing is played and no
audio device is opened.

Determinism: eSpeak keeps waveform-generator state in function-local statics
(the pitch-flutter phase, the automatic gain, the echo buffer, cycle
counters) that no API call resets, so the same text synthesised twice in one
process comes out different (even in length). Each :func:`synthesize` call
therefore works on a freshly loaded library: dlopen, initialise, speak,
terminate, dlclose. That costs about 4 ms per utterance and makes the
samples depend only on the arguments, not on what was synthesised before
(on POSIX; Windows has no dlclose, so there the state does carry over).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Self

import numpy as np

try:
    from _ctypes import dlclose
except ImportError:  # Windows: the library stays loaded between calls
    dlclose = None

# Constants from espeak-ng's speak_lib.h / espeak_ng.h (stable since 1.49).
_OUTPUT_SYNCHRONOUS = 0x0001  # ENOUTPUT_MODE_SYNCHRONOUS: samples go to the callback, nothing is played
_CHARS_UTF8 = 1  # espeakCHARS_UTF8
_POS_CHARACTER = 1  # POS_CHARACTER
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4  # espeak_PARAMETER
_PATH_HOME_MAX = 160  # espeak-ng 1.52 keeps the data path in a char[160] (N_PATH_HOME on POSIX) and truncates it
_NOISE_SEED = 1  # breath/aspiration noise is pseudo-random: fixed seed

# int callback(short *wav, int numsamples, espeak_EVENT *events); returning 0 continues.
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded, initialised or asked to speak."""


class _VOICE(ctypes.Structure):
    """espeak_VOICE, as returned by espeak_ListVoices."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


def _paths() -> tuple[str, str]:
    """(library, data directory) shipped by espeakng-loader, checked; the data directory by a short path."""
    try:
        import espeakng_loader

        lib_path, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except (ImportError, RuntimeError) as e:
        raise EspeakError(
            f"eSpeak NG is not available ({e}). Fix: `pip install espeakng-loader` (version pinned in requirements.txt)."
        ) from e
    if not os.path.isfile(lib_path):
        raise EspeakError(f"the eSpeak NG library '{lib_path}' is missing. Fix: reinstall espeakng-loader.")
    return lib_path, short_data_path(data_path)


def _fits(path: str) -> bool:
    return len(path.encode()) < _PATH_HOME_MAX - 40  # leave room for the file names eSpeak appends


def short_data_path(data_path: str) -> str:
    """``data_path``, or a short symbolic link to it when it is too long for eSpeak's buffer.

    eSpeak NG keeps its data path in a 160-byte buffer and fails with a truncated one; inside a
    virtualenv of a checkout at a long path (cluster home directories) the shipped data path is
    longer than that. The link lives in a folder of this user's own in the temporary directory
    (``$TMPDIR/speechrecipe-<uid>/``, mode 0700), is named by a hash of the target, is made once
    (atomically: a concurrent job makes the same link) and is checked every time it is used.
    """
    if _fits(data_path):
        return data_path
    folder = Path(tempfile.gettempdir()) / f"speechrecipe-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise EspeakError(
            f"'{folder}' is not a private folder of this user (another user's, a link, or writable by others), so "
            "the short link to eSpeak's data cannot be made safely there. Fix: remove it, or point TMPDIR at a "
            "folder of your own with a short path."
        )
    link = folder / f"espeak-ng-data-{hashlib.sha256(data_path.encode()).hexdigest()[:12]}"
    if not (link.is_symlink() and os.readlink(link) == data_path):
        staging = folder / f".{link.name}.{os.getpid()}"
        staging.unlink(missing_ok=True)
        os.symlink(data_path, staging)
        os.replace(staging, link)
    if not _fits(str(link)):
        raise EspeakError(
            f"the eSpeak NG data path '{data_path}' is {len(data_path)} bytes long and the temporary folder "
            f"'{folder}' is too long for a short link to it (eSpeak keeps the path in a {_PATH_HOME_MAX}-byte "
            "buffer). Fix: point TMPDIR at a folder with a short path, e.g. `export TMPDIR=/tmp`."
        )
    return str(link)


class _Session:
    """One load of the library, initialised and ready to speak; unloaded on exit.

    ``with _Session() as lib:`` gives a library in its just-loaded state.
    """

    _paths: tuple[str, str] | None = None

    def __init__(self) -> None:
        if _Session._paths is None:
            _Session._paths = _paths()
        self.lib_path, self.data_path = _Session._paths
        self.chunks: list[bytes] = []
        self.callback = _SynthCallback(self._collect)  # held here: the library keeps only the pointer

    def _collect(self, wav, numsamples, events) -> int:
        if wav and numsamples > 0:  # the last call of an utterance carries no samples
            self.chunks.append(ctypes.string_at(wav, numsamples * ctypes.sizeof(ctypes.c_short)))
        return 0

    def __enter__(self) -> Self:
        _check_not_loaded(self.lib_path)
        try:
            lib = ctypes.CDLL(self.lib_path)
        except OSError as e:
            raise EspeakError(
                f"cannot load the eSpeak NG library '{self.lib_path}': {e}. Fix: reinstall espeakng-loader."
            ) from e
        self.lib = lib
        lib.espeak_ng_InitializePath.argtypes = [ctypes.c_char_p]
        lib.espeak_ng_Initialize.argtypes = [ctypes.c_void_p]
        lib.espeak_ng_InitializeOutput.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
        lib.espeak_ng_GetStatusCodeMessage.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        lib.espeak_ng_GetStatusCodeMessage.restype = None
        lib.espeak_ng_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_ng_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_ng_Synthesize.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_VOICE)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VOICE))
        try:
            # The espeak_ng_* calls return status codes; the older espeak_Initialize
            # prints the problem and calls exit() when the data cannot be read.
            lib.espeak_ng_InitializePath(self.data_path.encode())
            self.check(lib.espeak_ng_Initialize(None), f"initialise with the data in '{self.data_path}'")
            self.check(lib.espeak_ng_InitializeOutput(_OUTPUT_SYNCHRONOUS, 0, None), "set up synchronous output")
            lib.espeak_SetSynthCallback(self.callback)
        except BaseException:
            self.__exit__()  # unload, so that the next attempt starts from scratch
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.lib.espeak_ng_Terminate()
        handle = self.lib._handle
        del self.lib
        if dlclose is not None:
            dlclose(handle)

    def check(self, status: int, doing: str) -> None:
        if status != 0:
            message = ctypes.create_string_buffer(512)
            self.lib.espeak_ng_GetStatusCodeMessage(status, message, len(message))
            raise EspeakError(
                f"eSpeak NG could not {doing}: {message.value.decode(errors='replace')} (status {status:#x})."
            )

    def speak(self, text: str, voice: str, rate: int, pitch: int) -> bytes:
        lib = self.lib
        self.check(lib.espeak_ng_SetVoiceByName(voice.encode()), f"select the voice '{voice}' (see list_voices())")
        for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_VOLUME, 100), (_RANGE, 50)):
            self.check(lib.espeak_ng_SetParameter(parameter, int(value), 0), f"set parameter {parameter} to {value}")
        # Noise comes from eSpeak's own generator (espeak_ng_SetRandSeed, 1.52 on) and,
        # in some code paths and older builds, from libc rand(): seed both.
        seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if seed is not None:
            seed.argtypes = [ctypes.c_long]
            seed(_NOISE_SEED)
        ctypes.CDLL(None).srand(_NOISE_SEED)
        self.chunks = []
        data = text.encode("utf-8") + b"\0"
        self.check(
            lib.espeak_ng_Synthesize(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None),
            f"synthesise {text!r}",
        )
        return b"".join(self.chunks)


def _check_not_loaded(lib_path: str) -> None:
    """Fail when the library is already loaded, by another module of this process.

    dlopen would then hand out that instance, with whatever state it is in,
    and dlclose would not unload it: synthesis would silently stop being
    deterministic.
    """
    if dlclose is None:
        return
    try:
        loaded = ctypes.CDLL(lib_path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return  # not loaded: this session starts from scratch
    dlclose(loaded._handle)
    raise EspeakError(
        f"'{lib_path}' is already loaded by another module of this process, so eSpeak's state cannot be "
        "reset between utterances. Fix: synthesise in a process that does not load eSpeak NG elsewhere."
    )


_LOCK = threading.Lock()  # eSpeak's state is process-global
_SAMPLE_RATE: int | None = None


def sample_rate() -> int:
    """eSpeak's native output rate in Hz (22050 for the shipped data)."""
    global _SAMPLE_RATE
    if _SAMPLE_RATE is None:
        with _LOCK, _Session() as session:
            _SAMPLE_RATE = int(session.lib.espeak_ng_GetSampleRate())
    return _SAMPLE_RATE


def synthesize(text: str, voice: str = "en", rate: int = 175, pitch: int = 50) -> np.ndarray:
    """Speak ``text``; float32 mono samples in [-1, 1) at :func:`sample_rate`.

    ``voice`` is an eSpeak voice name with an optional variant: ``"en"``
    (British), ``"en-us"``, ``"en-gb-scotland+f3"``, ``"en+m3"``
    (:func:`list_voices` has them all; note that ``"en-gb"`` is a language,
    not a voice name). ``rate`` is in words per minute (80-450), ``pitch``
    0-100 (50 is the voice's own base pitch). The same arguments always give
    bit-identical samples.
    """
    if not 80 <= rate <= 450:
        raise ValueError(f"rate must be 80-450 words per minute, got {rate}")
    if not 0 <= pitch <= 100:
        raise ValueError(f"pitch must be 0-100, got {pitch}")
    with _LOCK, _Session() as session:
        pcm = session.speak(text, voice, rate, pitch)
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / np.float32(32768.0)


def list_voices(language: str | None = None) -> list[tuple[str, str]]:
    """(identifier, name) of the installed voices, e.g. ``("gmw/en-US", "English (America)")``.

    ``language="en"`` lists the English voices; ``language="variant"`` the
    variants (``("!v/f3", "female3")``) that are appended to a voice name as
    ``+f3``.
    """
    with _LOCK, _Session() as session:
        spec = _VOICE(languages=language.encode()) if language else None
        found = session.lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
        voices = []
        while found[len(voices)]:
            v = found[len(voices)].contents
            voices.append((v.identifier.decode(), v.name.decode()))
    return voices
