"""Waiting-time bookkeeping (docflow.waiting): overlapping and successive gates, open intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from docflow.runs import RunTiming
from docflow.waiting import OpenGates, close_gate, open_gate

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_one_gate_adds_its_interval() -> None:
    timing, gates = RunTiming(), OpenGates()
    open_gate(timing, gates, "a", at(10))
    assert timing.human_waiting_started_at == at(10)
    close_gate(timing, gates, "a", at(70.5))
    assert timing.accumulated_human_waiting_ms == 60_500
    assert timing.human_waiting_started_at is None


def test_overlapping_gates_count_once() -> None:
    timing, gates = RunTiming(), OpenGates()
    open_gate(timing, gates, "a", at(0))
    open_gate(timing, gates, "b", at(5))
    close_gate(timing, gates, "a", at(8))
    assert timing.human_waiting_started_at == at(0)  # b is still open: the interval goes on
    assert timing.accumulated_human_waiting_ms == 0
    close_gate(timing, gates, "b", at(12))
    assert timing.accumulated_human_waiting_ms == 12_000


def test_successive_gates_each_count_and_the_gap_does_not() -> None:
    timing, gates = RunTiming(), OpenGates()
    open_gate(timing, gates, "a", at(0))
    close_gate(timing, gates, "a", at(3))
    open_gate(timing, gates, "b", at(100))
    assert timing.human_waiting_started_at == at(100)
    close_gate(timing, gates, "b", at(100.25))
    assert timing.accumulated_human_waiting_ms == 3_250


def test_closing_a_gate_that_is_not_open_changes_nothing() -> None:
    timing, gates = RunTiming(), OpenGates()
    open_gate(timing, gates, "a", at(0))
    close_gate(timing, gates, "zzz", at(5))
    assert timing.human_waiting_started_at == at(0)
    close_gate(timing, gates, "a", at(5))
    close_gate(timing, gates, "a", at(50))
    assert timing.accumulated_human_waiting_ms == 5_000


def test_active_duration_excludes_the_wait() -> None:
    timing, gates = RunTiming(started_at=at(0)), OpenGates()
    open_gate(timing, gates, "a", at(1))
    close_gate(timing, gates, "a", at(31))
    timing.completed_at = at(40)
    shown = timing.model_dump(mode="json")
    assert shown["duration_ms"] == 40_000
    assert shown["active_duration_ms"] == 10_000
    assert shown["accumulated_review_waiting_ms"] == 30_000


def test_a_gate_closed_at_an_earlier_time_does_not_cut_the_interval_short() -> None:
    # B's decision is handled at 10 s; A's deadline (dated 7 s) is handled after it: the wait lasted until 10 s.
    timing, gates = RunTiming(), OpenGates()
    open_gate(timing, gates, "a", at(0))
    open_gate(timing, gates, "b", at(1))
    close_gate(timing, gates, "b", at(10))
    close_gate(timing, gates, "a", at(7))
    assert timing.accumulated_human_waiting_ms == 10_000
    open_gate(timing, gates, "c", at(20))  # a new interval forgets the old one's closes
    close_gate(timing, gates, "c", at(21))
    assert timing.accumulated_human_waiting_ms == 11_000
