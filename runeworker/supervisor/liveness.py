"""Liveness board shared by the supervisor and its children.

An anonymous shared memory map created before fork: one slot per child, holding the
child's last heartbeat (CLOCK_MONOTONIC, which is the same clock in every process) and
its lifecycle state. Writing a slot is a memory store, no system call, so children can
beat as often as they like. A slot also holds a short text: what a WAITING child waits for
(or why RabbitMQ blocks a BLOCKED child's publishes)
(already masked by the child), which the supervisor shows in sd_notify STATUS and `/readyz`.
"""

from __future__ import annotations

import mmap
import struct
import time
from enum import IntEnum

_SLOT = struct.Struct("=dII")  # last beat (monotonic s), state, messages handled
_NOTE = 200  # bytes of the slot's note (UTF-8, NUL padded)
_STRIDE = _SLOT.size + _NOTE


class ChildState(IntEnum):
    """What a child reports about itself. Transitions: BOOTING -> READY -> DRAINING (-> exit);
    READY <-> BUSY while a node runs; BOOTING or READY -> WAITING while RabbitMQ or Redis does
    not answer (the child keeps beating: waiting for a dependency is not a crash) -> READY;
    READY, BUSY, BOOTING or WAITING -> BLOCKED while RabbitMQ blocks its publishes (a memory or
    disk alarm: the child waits inside a commit and beats from pika's I/O loop) -> back."""

    EMPTY = 0  # slot not in use
    BOOTING = 1  # forked, connecting to RabbitMQ and Redis
    READY = 2  # connected and consuming
    BUSY = 3  # executing a delivery (the beat only advances while the step is not stuck)
    DRAINING = 4  # stopped consuming, finishing in-flight work
    WAITING = 5  # alive, retrying a dependency that does not answer (the note says which)
    BLOCKED = 6  # alive, its commit held by RabbitMQ's resource alarm (the note says which)


class Liveness:
    """`slots` heartbeat records in memory shared across fork."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._map = mmap.mmap(-1, _STRIDE * slots)

    def beat(self, slot: int, state: ChildState, handled: int = 0, at: float | None = None) -> None:
        """Record a beat now (or at `at`: a busy child reports when its step started, so a
        step stuck for longer than the timeout stops looking alive)."""
        when = time.monotonic() if at is None or at <= 0 else at
        _SLOT.pack_into(self._map, slot * _STRIDE, when, int(state), handled)

    def read(self, slot: int) -> tuple[float, ChildState, int]:
        """(last beat, state, messages handled) of a slot."""
        last, state, handled = _SLOT.unpack_from(self._map, slot * _STRIDE)
        return last, ChildState(state), handled

    def note(self, slot: int, text: str) -> None:
        """Set the slot's note (cut to what fits); "" clears it."""
        raw = text.encode("utf-8", "replace")[:_NOTE]
        start = slot * _STRIDE + _SLOT.size
        self._map[start : start + _NOTE] = raw.ljust(_NOTE, b"\0")

    def read_note(self, slot: int) -> str:
        """The slot's note ("" when none)."""
        start = slot * _STRIDE + _SLOT.size
        return self._map[start : start + _NOTE].rstrip(b"\0").decode("utf-8", "replace")

    def clear(self, slot: int) -> None:
        _SLOT.pack_into(self._map, slot * _STRIDE, 0.0, int(ChildState.EMPTY), 0)
        self.note(slot, "")
