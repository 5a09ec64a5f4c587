"""The clips of a run, made ready for the model ahead of time: while the model runs on
one clip, a background thread decodes the next ones, crops them and draws their region
maps (:func:`~expresso_xai.explain.clip.crop_clip`'s work but ``model.preprocess``) into
a bounded queue.

Why a thread and not a process: decoding (OpenCV) and the array work release the GIL,
and a :class:`~expresso_xai.explain.clip.ClipInput` crosses a thread for free. Why the
thread runs no torch code: torch's intra-op pool (OpenMP) run from a second thread gets
a second team of threads, which fights the model's for the cores; preprocessing, a few
elementwise passes over the cropped clip, is left to the model's thread
(:func:`clip_input`). Why the queue is bounded (``prefetch`` clips,
:data:`DEFAULT_PREFETCH`): a 20-minute interview must stay in bounded memory, and a clip
more than a few ahead gains nothing once the model is the slower side. What stays in the caller's thread: everything that touches the
model's state or the run's totals (``model.prepare_clip``, the forward, the methods,
the checkpoint), so the cube is the same bit for bit with or without the thread.

Errors in the thread (an undecodable or truncated file, a face track that does not fit)
are raised in the caller's thread as they are, when the clip they stopped is asked for;
an error or Ctrl-C in the caller stops the thread before the run returns. ``prefetch=0``
makes the same clips in the caller's thread, one at a time. Either way :class:`ClipFeed`
times how long the model waited for its next clip (``decode_wait_fraction``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Iterator

import numpy as np

from ..errors import MethodError
from .clip import ClipInput, cropped_input

log = logging.getLogger(__name__)

#: clips made ready ahead of the model by default (0: none, no thread)
DEFAULT_PREFETCH = 2
#: seconds :meth:`Prefetcher.close` waits for the thread to stop before leaving it behind
STOP_TIMEOUT = 10.0
_POLL = 0.05  # seconds between checks of the stop flag while the queue is full or empty
_END = object()


def prefetch_for(value) -> int:
    """``prefetch=`` checked: how many clips are made ready ahead of the model, a whole
    number of at least 0 (0: no background thread).

    Example:
        >>> prefetch_for(2), prefetch_for(0)
        (2, 0)
        >>> prefetch_for(-1)
        Traceback (most recent call last):
        ...
        expresso_xai.errors.MethodError: prefetch must be a whole number of clips of at least 0 (0: no background decoding), got -1
    """
    is_whole = isinstance(value, int) and not isinstance(value, bool)
    if not is_whole or value < 0:
        raise MethodError(f"prefetch must be a whole number of clips of at least 0 (0: no background decoding), "
                          f"got {value!r}")
    return int(value)


def cropped(plan, clip, positions, faces, crop) -> ClipInput:
    """One clip of the video (a :class:`~expresso_xai.clips.Clip` at ``positions`` of the
    face track) cropped for ``plan``'s model, with its landmarks and region map, but not
    yet preprocessed (``x`` is ``None``): NumPy and OpenCV work only, what the background
    thread does. :func:`clip_input` finishes it as :func:`crop_clip` would.

    Example:
        >>> import expresso_xai as ex
        >>> from expresso_xai.explain.plan import plan_explain
        >>> from expresso_xai.testing import clip_inputs
        >>> model, frames, faces, crop = clip_inputs(input_size=(64, 64))
        >>> clip = next(ex.iter_clips(ex.Video.from_array(frames), 16))
        >>> ready = cropped(plan_explain(model, ["saliency"], {}), clip, clip.indices, faces, crop)
        >>> ready.frames.shape, ready.x is None
        ((16, 64, 64, 3), True)
    """
    return cropped_input(clip.frames, faces[positions], crop[positions], plan.scheme, np.asarray(clip.indices),
                         clip.timestamps)


def clip_input(plan, clip, positions=None, faces=None, crop=None) -> ClipInput:
    """A clip made ready for ``plan``'s model: a :class:`~expresso_xai.clips.Clip` is cropped
    (:func:`cropped`, at ``positions`` of ``faces`` and ``crop``), and a :class:`ClipInput`
    without its tensor is preprocessed (``model.preprocess``: torch work, kept in the
    thread that runs the model so that torch's thread pool is not run from two threads).
    The result equals :func:`crop_clip`'s.

    Example:
        >>> import torch, expresso_xai as ex
        >>> from expresso_xai.explain.clip import crop_clip
        >>> from expresso_xai.explain.plan import plan_explain
        >>> from expresso_xai.testing import clip_inputs
        >>> model, frames, faces, crop = clip_inputs(input_size=(64, 64))
        >>> plan = plan_explain(model, ["saliency"], {})
        >>> clip = next(ex.iter_clips(ex.Video.from_array(frames), 16))
        >>> ready = clip_input(plan, clip, clip.indices, faces, crop)
        >>> bool(torch.equal(ready.x, crop_clip(model, frames, faces, crop).x))
        True
    """
    if not isinstance(clip, ClipInput):
        clip = cropped(plan, clip, positions, faces, crop)
    if clip.x is None:
        clip.x = plan.model.preprocess(clip.frames, plan.device)
    return clip


def _clip_inputs(plan, state, source, crop) -> Iterator[tuple]:
    """``(positions, ClipInput, digest)`` for every clip of ``source`` the run has not
    finished, cropped but not preprocessed (:func:`cropped`): ``digest`` is the hash of the video's frames up to that clip, what the
    checkpoint records once the clip is added (read here, as the clip is decoded: the
    source keeps only the last two)."""
    for positions, clip in source.clips(plan, state):
        yield positions, cropped(plan, clip, positions, source.faces, crop), source.digest_decoded()


class Prefetcher:
    """Iterates over ``items`` in a background thread, at most ``ahead`` items in advance
    (with ``ahead=0``: in the caller's thread, when asked), timing how long the caller
    waits for each. Use it as a context manager: leaving stops the thread.

    Example:
        >>> import threading
        >>> before = threading.active_count()
        >>> with Prefetcher(iter(range(5)), ahead=2) as items:
        ...     list(items)
        [0, 1, 2, 3, 4]
        >>> threading.active_count() == before
        True
        >>> with Prefetcher((1 // n for n in (1, 0)), ahead=2) as items:
        ...     list(items)
        Traceback (most recent call last):
        ...
        ZeroDivisionError: integer division or modulo by zero
    """

    def __init__(self, items: Iterator, ahead: int = DEFAULT_PREFETCH):
        self.items, self.ahead = items, prefetch_for(ahead)
        self.waited = 0.0  # seconds the caller waited for its next item
        self.queue: queue.Queue = queue.Queue(maxsize=max(self.ahead, 1))
        self.stopping = threading.Event()
        self.thread = None
        if self.ahead:
            self.thread = threading.Thread(target=self._produce, name="expresso-xai-prefetch", daemon=True)
            self.thread.start()

    def _produce(self) -> None:
        """The thread: every item, then the end (or the error that stopped it), unless stopped."""
        try:
            for item in self.items:
                if not self._put((item, None)):
                    return
            self._put((_END, None))
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            self._put((_END, error))
        finally:
            self._close_items()

    def _put(self, entry) -> bool:
        while not self.stopping.is_set():
            try:
                self.queue.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _next(self):
        if self.thread is None:
            return next(self.items, _END), None
        while True:
            try:
                return self.queue.get(timeout=_POLL)
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    return _END, None  # stopped by close(): nothing more will come

    def __iter__(self):
        while True:
            asked = time.perf_counter()
            item, error = self._next()
            self.waited += time.perf_counter() - asked
            if error is not None:
                raise error
            if item is _END:
                return
            yield item

    def _close_items(self) -> None:
        close = getattr(self.items, "close", None)
        if close is not None:  # a generator: its finally blocks run (the decoder is released)
            close()

    def close(self) -> None:
        """Stop the thread (at its next item: a clip's decoding and crop) and wait for it."""
        self.stopping.set()
        if self.thread is None:
            self._close_items()
            return
        while True:  # free the clips made ahead: the thread stops at its next put
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join(STOP_TIMEOUT)
        if self.thread.is_alive():
            log.warning("the clip prefetch thread did not stop within %.0f s; left to finish on its own",
                        STOP_TIMEOUT)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ClipFeed:
    """The clips of a run for the engine's loops: ``(positions, ClipInput, digest)`` cropped
    ``prefetch`` clips ahead (:class:`Prefetcher` over :func:`_clip_inputs`), a progress
    bar of the clips *finished* (:meth:`finished`), and the share of the loop's time spent
    waiting for clips (:attr:`wait_fraction`). A context manager, like :class:`Prefetcher`.

    Example:
        >>> import expresso_xai as ex
        >>> from expresso_xai.testing import tiny_model
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=32)
        >>> cube = ex.explain(tiny_model(), video, methods=["saliency"], progress=False)
        >>> cube.attrs["prefetch"], 0 <= cube.attrs["decode_wait_fraction"] <= 1
        (2, True)
    """

    def __init__(self, plan, state, source, crop, prefetch: int = DEFAULT_PREFETCH, progress: bool = False):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=source.n_clips(plan), initial=state.done, desc="explain", unit="clip",
                        disable=not progress, leave=False)
        self.started, self.stopped = time.perf_counter(), None
        self.prefetcher = Prefetcher(_clip_inputs(plan, state, source, crop), prefetch)

    def __iter__(self):
        return iter(self.prefetcher)

    def finished(self, done: int) -> None:
        """Move the bar to ``done`` clips finished (it goes back when a resumed run starts afresh)."""
        if done != self.bar.n:
            self.bar.update(done - self.bar.n)

    @property
    def wait_fraction(self) -> float:
        """Seconds waited for clips over the seconds of the loop (until closed)."""
        seconds = (self.stopped or time.perf_counter()) - self.started
        return float(min(1.0, self.prefetcher.waited / seconds)) if seconds > 0 else 0.0

    def close(self) -> None:
        if self.stopped is None:
            self.stopped = time.perf_counter()
        self.prefetcher.close()
        self.bar.close()

    def __enter__(self) -> "ClipFeed":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
