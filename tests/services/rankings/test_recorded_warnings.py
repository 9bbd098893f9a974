"""``recorded_warnings``: each thread records exactly its own warnings, and the process's warning state is
restored when the last capture ends."""

from __future__ import annotations

import threading
import warnings

from app.services.rankings.recorded_warnings import recorded_warnings


def _emit(tag: str, repeats: int, barrier: threading.Barrier | None = None) -> None:
    for i in range(repeats):
        if barrier is not None and i == 1:
            barrier.wait()  # every thread is inside its capture at once
        warnings.warn("the same text from the same line in every thread", UserWarning, stacklevel=1)
        warnings.warn(f"{tag} #{i}", RuntimeWarning, stacklevel=1)


def test_concurrent_captures_keep_their_own_warnings():
    filters, showwarning = list(warnings.filters), warnings.showwarning
    n, repeats = 8, 5
    barrier = threading.Barrier(n)
    got: dict[str, list[str]] = {}

    def worker(tag: str) -> None:
        with recorded_warnings() as caught:
            _emit(tag, repeats, barrier)
        got[tag] = [str(w.message) for w in caught]

    threads = [threading.Thread(target=worker, args=(f"t{k}",)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(n):
        mine = got[f"t{k}"]
        assert sorted(m for m in mine if " #" in m) == [f"t{k} #{i}" for i in range(repeats)]
        # every occurrence of the shared text is recorded (no "once per location" across threads)
        assert mine.count("the same text from the same line in every thread") == repeats
        assert len(mine) == 2 * repeats
    assert warnings.filters == filters and warnings.showwarning is showwarning


def test_a_thread_that_does_not_record_keeps_the_previous_handler():
    with warnings.catch_warnings(record=True) as outer:
        warnings.simplefilter("always")
        inside, emitted = threading.Event(), threading.Event()
        recorded: list[str] = []

        def recorder() -> None:
            with recorded_warnings() as caught:
                inside.set()
                emitted.wait(5)
                warnings.warn("recorder's own", UserWarning, stacklevel=1)
            recorded.extend(str(w.message) for w in caught)

        t = threading.Thread(target=recorder)
        t.start()
        inside.wait(5)
        warnings.warn("main thread, not recording", UserWarning, stacklevel=1)
        emitted.set()
        t.join()
    assert recorded == ["recorder's own"]
    assert [str(w.message) for w in outer] == ["main thread, not recording"]


def test_nested_captures_and_repeated_use():
    for _ in range(3):  # each capture starts fresh: a warning seen before is recorded again
        with recorded_warnings() as outer:
            warnings.warn("outer", UserWarning, stacklevel=1)
            with recorded_warnings() as inner:
                warnings.warn("inner", UserWarning, stacklevel=1)
            assert [str(w.message) for w in inner] == ["inner"]
        assert [str(w.message) for w in outer] == ["outer", "inner"]


def test_resource_warnings_stay_ignored_as_by_default():
    # the garbage collector's unclosed-file warnings (raised in whichever thread collects) are not a
    # metric's warning: ignored as Python's default filters do, inside captures and outside them
    with recorded_warnings() as caught:
        warnings.warn("unclosed file", ResourceWarning, stacklevel=1)
        warnings.warn("a metric's own", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a metric's own"]
