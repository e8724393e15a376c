"""The local profanity classifier (``alt-profanity-check``), called in micro-batches.

The model is a linear SVM over a TF-IDF vocabulary (scikit-learn): one call for many
messages costs about what one call for one message does (measured: a batch of 600 takes
0.009 ms a message, one at a time 3.1 ms), so what arrives while a call runs goes
together in the next one. It runs in a thread, off the event loop; it never sees
more than ``normalize.MAX_SCAN_CHARS`` of a text and never raises on odd text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from plugins.moderation.normalize import MAX_SCAN_CHARS

log = logging.getLogger(__name__)

Predict = Callable[[list[str]], Sequence[float]]


def load_predictor() -> Predict:
    """The classifier's batch function (imports scikit-learn: about 0.7 s, once).

    The model is five linear SVMs, each with a sigmoid calibration, averaged
    (``CalibratedClassifierCV``). scikit-learn's ``predict_proba`` validates its input
    five times over, which is 90% of a call (3 ms for one message); the same arithmetic
    as one sparse product and a sigmoid gives the same numbers (equal to the last bit on
    the labelled set, a test checks) in 0.4 ms. A model of any other shape is called the
    library's way.
    """
    import profanity_check.profanity_check as library  # type: ignore[import-untyped]

    fast = _linear(library.model, library.vectorizer)
    if fast is not None:
        return fast

    def predict(texts: list[str]) -> Sequence[float]:
        return [float(p) for p in library.predict_prob(texts)]

    return predict


def _linear(model: Any, vectorizer: Any) -> Predict | None:
    """``model.predict_proba(...)[:, 1]`` as plain arithmetic, where the model allows."""
    import numpy as np
    from scipy.special import expit

    try:
        parts = model.calibrated_classifiers_
        weights = np.vstack([part.estimator.coef_.ravel() for part in parts]).T
        biases = np.array([part.estimator.intercept_[0] for part in parts])
        slopes = np.array([part.calibrators[0].a_ for part in parts])
        offsets = np.array([part.calibrators[0].b_ for part in parts])
        binary = list(model.classes_) == [0, 1] and all(
            type(part.calibrators[0]).__name__ == "_SigmoidCalibration"
            and len(part.calibrators) == 1
            for part in parts
        )
    except (AttributeError, IndexError, ValueError):
        return None
    if not binary:
        return None

    def predict(texts: list[str]) -> Sequence[float]:
        decision = vectorizer.transform(texts) @ weights + biases
        return [float(p) for p in expit(-(decision * slopes + offsets)).mean(axis=1)]

    return predict


class Classifier:
    """Scores texts in [0, 1] (the probability of profanity), batching concurrent calls."""

    def __init__(self, predict: Predict, *, window_s: float = 0.002, max_batch: int = 128):
        self._predict = predict
        self._window_s = window_s
        self._max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[float]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.calls = 0  # model calls so far (a batch is one call)

    async def score(self, text: str) -> float:
        """The probability that ``text`` is profane."""
        [result] = await self.score_many([text])
        return result

    async def score_many(self, texts: Sequence[str]) -> list[float]:
        """Scores of several texts (an upload's passages), batched with everyone else's."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[float]] = []
        for text in texts:
            future: asyncio.Future[float] = loop.create_future()
            self._pending.append((_clean(text), future))
            futures.append(future)
        if len(self._pending) >= self._max_batch:
            self._flush_now()
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        return list(await asyncio.gather(*futures))

    async def aclose(self) -> None:
        """Stop the pending flush; waiting callers get an error."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for _, future in self._pending:
            if not future.done():
                future.set_exception(RuntimeError("the classifier was closed"))
        self._pending.clear()

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._window_s)
        finally:
            self._flusher = None
        self._flush_now()

    def _flush_now(self) -> None:
        batch, self._pending = self._pending, []
        if self._flusher is not None and self._flusher is not asyncio.current_task():
            self._flusher.cancel()
            self._flusher = None
        for start in range(0, len(batch), self._max_batch):
            part = batch[start : start + self._max_batch]
            task = asyncio.create_task(self._run(part))
            task.add_done_callback(_log_failure)

    async def _run(self, batch: list[tuple[str, asyncio.Future[float]]]) -> None:
        texts = [text for text, _ in batch]
        self.calls += 1
        try:
            scores = await asyncio.to_thread(self._predict, texts)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), value in zip(batch, scores, strict=True):
            if not future.done():
                future.set_result(min(1.0, max(0.0, value)))


def _clean(text: str) -> str:
    """What the vectoriser can take: bounded, no lone surrogates, never empty."""
    text = text[:MAX_SCAN_CHARS].encode("utf-8", "replace").decode("utf-8")
    return text if text.strip() else "."


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("classifier batch failed", exc_info=task.exception())
