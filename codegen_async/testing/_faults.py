"""Faults injected on demand: errors, dropped connections, delays, forced 429s.

A fault applies either before the request does anything ("before" kinds) or after
its handler succeeded and committed ("after" kinds):

- `error_before`        answer `status` (default 503) without doing anything
- `close_before`        drop the connection without a response, nothing done
- `reset`               reset the connection (TCP RST), nothing done
- `latency`             wait `seconds` (real time) first, then go on normally
- `rate_limited`        answer 429 with Retry-After `seconds` (real time)
- `error_after_commit`  do the work, then answer `status` (default 503)
- `close_after_commit`  do the work, then drop the connection without a response
- `silence_after_commit` do the work, then never answer
- `truncate`            do the work, send the head and half the body, then close
- `drip`                do the work, send the body slowly (`seconds` per chunk)
- `list_delay`          a created run shows in the list only `seconds` (emulated) later
- `commit_delay`        a create commits `seconds` (emulated) after its request arrived:
                        the run shows in the list only then, and the answer comes only
                        then (a client that gave up first sees a timeout, and the run
                        appears all the same)

Connection-level kinds need a real socket. When the app is served (see
`Emulator.serve`) it asks the fault proxy for them with the response header
`x-emulator-fault` (`close`, `reset`, `truncate`, `silence`, `drip:<s>`). In
process (httpx.ASGITransport) close/reset/truncate raise
`httpx.RemoteProtocolError`, silence raises `httpx.ReadTimeout` (what a client
with a read timeout sees), and drip sleeps the time the chunks would take.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterable

import attrs

__all__ = [
    "AFTER_KINDS",
    "BEFORE_KINDS",
    "DRIP_CHUNK_BYTES",
    "FAULT_HEADER",
    "FAULT_KINDS",
    "Action",
    "Fault",
    "Faults",
    "Plan",
]

FAULT_HEADER = "x-emulator-fault"
# The proxy sends a dripped body in chunks of this many bytes.
DRIP_CHUNK_BYTES = 64

BEFORE_KINDS = (
    "error_before",
    "close_before",
    "reset",
    "latency",
    "rate_limited",
    "commit_delay",
)
AFTER_KINDS = (
    "error_after_commit",
    "close_after_commit",
    "silence_after_commit",
    "truncate",
    "drip",
    "list_delay",
)
FAULT_KINDS = BEFORE_KINDS + AFTER_KINDS
_ERROR_KINDS = frozenset({"error_before", "error_after_commit"})
_DEFAULT_SECONDS = {
    "latency": 0.05,
    "rate_limited": 1.0,
    "drip": 0.01,
    "list_delay": 5.0,
    "commit_delay": 8.0,
}
# Kinds that only apply to routes that create something, and cannot be random.
_CREATING_ONLY = frozenset({"list_delay", "commit_delay"})
_DEFAULT_RANDOM_KINDS = ("error_before", "error_after_commit", "close_before", "close_after_commit")


@attrs.frozen
class Action:
    """What the app must do for one fault."""

    kind: str
    status: int = 503
    seconds: float = 0.0

    def wire_signal(self) -> str | None:
        """The `x-emulator-fault` value the proxy executes, if this is a connection fault."""
        if self.kind in ("close_before", "close_after_commit"):
            return "close"
        if self.kind == "silence_after_commit":
            return "silence"
        if self.kind in ("reset", "truncate"):
            return self.kind
        if self.kind == "drip":
            return f"drip:{self.seconds:g}"
        return None

    def drip_seconds(self, body_size: int) -> float:
        """How long the dripped body takes to send."""
        return math.ceil(max(body_size, 1) / DRIP_CHUNK_BYTES) * self.seconds


@attrs.define(eq=False)
class Fault:
    """A fault added with `Faults.add`; `fired` counts the times it applied."""

    kind: str
    route: str | None
    status: int
    seconds: float
    times: int | None
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def action(self) -> Action:
        return Action(self.kind, self.status, self.seconds)


@attrs.define
class _RandomFaults:
    rate: float
    kinds: tuple[str, ...]
    routes: frozenset[str] | None
    rng: random.Random
    status: int | None
    seconds: float | None


@attrs.frozen
class Plan:
    """The faults chosen for one request when it arrived."""

    latency: float = 0.0
    before: Action | None = None
    after: Action | None = None  # a random "after" fault rolled on arrival
    commit_delay: float = 0.0  # emulated seconds before a create commits and answers


NO_PLAN = Plan()


class Faults:
    """The faults to inject; safe to use from the test and from the serving thread."""

    def __init__(self, routes: Iterable[str], creating_routes: Iterable[str]) -> None:
        self._routes = frozenset(routes)
        self._creating = frozenset(creating_routes)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random: _RandomFaults | None = None
        self._injected: dict[str, int] = {}
        self.active = False  # a cheap check for the hot path

    def add(
        self,
        kind: str,
        *,
        route: str | None = None,
        status: int | None = None,
        seconds: float | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Inject `kind` on `route` (None: every route) for the next `times` requests
        it applies to (None: for ever). `status` is for the error kinds, `seconds` for
        latency / rate_limited / drip (real seconds) and list_delay / commit_delay
        (emulated seconds)."""
        self._check_kind(kind)
        self._check_route(kind, route)
        if times is not None and (not _is_int(times) or times < 1):
            raise ValueError(f"times must be an int >= 1 or None, got {times!r}")
        fault = Fault(kind, route, _status(kind, status), _seconds(kind, seconds), times)
        with self._lock:
            self._faults.append(fault)
            self.active = True
        return fault

    def random(
        self,
        *,
        rate: float,
        kinds: Iterable[str] | None = None,
        routes: Iterable[str] | None = None,
        seed: int = 0,
        status: int | None = None,
        seconds: float | None = None,
    ) -> None:
        """Inject one of `kinds` (chosen uniformly) on a `rate` fraction of requests to
        `routes` (None: all), reproducibly from `seed`. Replaces an earlier call;
        `rate=0` turns random faults off."""
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise ValueError(f"rate must be a number in [0, 1], got {rate!r}")
        chosen = tuple(kinds) if kinds is not None else _DEFAULT_RANDOM_KINDS
        if not chosen:
            raise ValueError("kinds must name at least one fault kind")
        for kind in chosen:
            self._check_kind(kind)
            if kind in _CREATING_ONLY:
                raise ValueError(f"kinds: {kind} cannot be random; use add()")
        route_set = None if routes is None else frozenset(routes)
        for route in route_set or ():
            self._check_route(chosen[0], route)
        if not _is_int(seed):
            raise ValueError(f"seed must be an int, got {seed!r}")
        if status is not None:
            _status("error_before", status)
        if seconds is not None:
            _seconds("latency", seconds)
        config = _RandomFaults(rate, chosen, route_set, random.Random(seed), status, seconds)
        with self._lock:
            self._random = config if rate > 0 else None
            self.active = bool(self._faults) or self._random is not None

    def clear(self) -> None:
        """Remove every fault, random ones included."""
        with self._lock:
            self._faults.clear()
            self._random = None
            self.active = False

    @property
    def pending(self) -> list[Fault]:
        """The added faults not yet used up."""
        with self._lock:
            return [f for f in self._faults if not f.exhausted]

    def injected(self) -> dict[str, int]:
        """How many times each kind fired."""
        with self._lock:
            return dict(self._injected)

    def reset_counters(self) -> None:
        with self._lock:
            self._injected.clear()

    # -- used by the app ------------------------------------------------------

    def take_before(self, route: str) -> Plan:
        """Latency to add and the fault to apply before the request does anything."""
        with self._lock:
            latency = commit_delay = 0.0
            before: Action | None = None
            for fault in self._faults:
                if fault.exhausted or fault.kind not in BEFORE_KINDS:
                    continue
                if fault.route is not None and fault.route != route:
                    continue
                if fault.kind == "latency":
                    latency += fault.seconds
                elif fault.kind == "commit_delay":
                    if route not in self._creating or commit_delay:
                        continue
                    commit_delay = fault.seconds
                elif before is None:
                    before = fault.action()
                else:
                    continue
                self._fire(fault)
            rolled = self._roll(route)
            after: Action | None = None
            if rolled is not None:
                if rolled.kind == "latency":
                    latency += rolled.seconds
                    self._count(rolled.kind)
                elif rolled.kind in AFTER_KINDS:
                    after = rolled
                elif before is None:
                    before = rolled
                    self._count(rolled.kind)
            self._prune()
            return Plan(latency, before, after, commit_delay)

    def take_after(self, route: str, plan: Plan) -> Action | None:
        """The fault to apply to a request whose handler succeeded."""
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or fault.kind not in AFTER_KINDS or fault.kind == "list_delay":
                    continue
                if fault.route is None or fault.route == route:
                    self._fire(fault)
                    self._prune()
                    return fault.action()
            if plan.after is not None:
                self._count(plan.after.kind)
            return plan.after

    def take_list_delay(self, route: str) -> float:
        """Emulated seconds before a run being created now shows in the list."""
        if not self.active:
            return 0.0
        with self._lock:
            for fault in self._faults:
                if fault.kind != "list_delay" or fault.exhausted:
                    continue
                if fault.route is None or fault.route == route:
                    self._fire(fault)
                    self._prune()
                    return fault.seconds
            return 0.0

    def _roll(self, route: str) -> Action | None:
        config = self._random
        if config is None or (config.routes is not None and route not in config.routes):
            return None
        if config.rng.random() >= config.rate:
            return None
        kind = config.rng.choice(config.kinds)
        return Action(kind, _status(kind, config.status), _seconds(kind, config.seconds))

    def _fire(self, fault: Fault) -> None:
        fault.fired += 1
        self._count(fault.kind)

    def _count(self, kind: str) -> None:
        self._injected[kind] = self._injected.get(kind, 0) + 1

    def _prune(self) -> None:
        self._faults = [f for f in self._faults if not f.exhausted]
        self.active = bool(self._faults) or self._random is not None

    def _check_kind(self, kind: str) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}; got {kind!r}")

    def _check_route(self, kind: str, route: str | None) -> None:
        if route is None:
            return
        if route not in self._routes:
            raise ValueError(f"route must be one of ROUTES or None, got {route!r}")
        if kind in _CREATING_ONLY and route not in self._creating:
            raise ValueError(f"route: {kind} applies to {sorted(self._creating)}, not {route!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _status(kind: str, status: int | None) -> int:
    if kind == "rate_limited":
        return 429
    if kind not in _ERROR_KINDS:
        return 503 if status is None else _status("error_before", status)
    if status is None:
        return 503
    if not _is_int(status) or not 400 <= status <= 599:
        raise ValueError(f"status must be an int in 400..599, got {status!r}")
    return status


def _seconds(kind: str, seconds: float | None) -> float:
    if seconds is None:
        return _DEFAULT_SECONDS.get(kind, 0.0)
    ok = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if not ok or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    return float(seconds)
