"""Option validation and the helper's argument vector (pure code, no I/O).

Every value is checked here, before anything is spawned: a wrong type is a
:class:`TypeError`, a wrong value a :class:`ValueError`. The argument vector
puts each value in its own argument and the filter after ``--``, so no value
can ever be read by the helper as a flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_SNAPLEN = 262144
DEFAULT_TIMEOUT = 1
"""Milliseconds: the kernel hands over packets within 1 ms, in blocks."""
_INT_MAX = 2**31 - 1
MAX_ARG = 131071
"""The longest string one argument may carry: Linux's MAX_ARG_STRLEN, 32
pages, less the NUL."""
DIRECTIONS = ("in", "out", "inout")
"""The values of ``direction`` and of ``set_direction``."""
_PRECISIONS = ("micro", "nano")

Timeout = int | str | None
"""Milliseconds (``>= 1``), ``"immediate"``, or ``None`` for never."""


def _text(name: str, value: object, *, path: bool = False, empty: bool = False) -> str:
    if path and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        kind = "a string or path" if path else "a string"
        raise TypeError(f"{name} must be {kind}, not {type(value).__name__}")
    if not value and not empty:
        raise ValueError(f"{name} must not be empty")
    if "\0" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    try:
        size = len(os.fsencode(value))
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} cannot be encoded for the helper: {exc.reason}") from None
    if size > MAX_ARG:
        hint = "; start without it, then call set_filter()" if name == "filter" else ""
        raise ValueError(
            f"{name} is {size} bytes, more than a helper argument holds ({MAX_ARG}){hint}"
        )
    return value


def _int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {value}")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__}")
    return value


def choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """``value``, one of ``choices``; TypeError or ValueError."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


@dataclass(frozen=True)
class Options:
    """A validated capture configuration; build it with :meth:`validate`."""

    interface: str | None = None
    file: str | None = None
    filter: str | None = None
    snaplen: int = MAX_SNAPLEN
    promiscuous: bool = False
    timeout: Timeout = DEFAULT_TIMEOUT
    buffer: int | None = None
    direction: str | None = None
    monitor: bool = False
    precision: str = "nano"
    chroot: str | None = None
    user: str | None = None
    group: str | None = None
    inject: bool = False
    cluster_id: int | None = None
    cpu_affinity: str | None = None
    stats_interval: float | None = None
    paused: bool = False

    @classmethod
    def validate(
        cls,
        *,
        interface: object = None,
        file: object = None,
        filter: object = None,
        snaplen: object = MAX_SNAPLEN,
        promiscuous: object = False,
        timeout: object = DEFAULT_TIMEOUT,
        buffer: object = None,
        direction: object = None,
        monitor: object = False,
        precision: object = "nano",
        chroot: object = None,
        user: object = None,
        group: object = None,
        inject: object = False,
        cluster_id: object = None,
        cpu_affinity: object = None,
        stats_interval: object = None,
        paused: object = False,
        remote: bool = False,
    ) -> Options:
        """Check every option; raise TypeError or ValueError on the first
        bad one (``remote``: for a capture on another host, whose CPUs this
        one cannot check)."""
        if interface is not None and file is not None:
            raise ValueError("interface and file are mutually exclusive")
        opts = cls(
            interface=None if interface is None else _text("interface", interface),
            file=None if file is None else _text("file", file, path=True),
            filter=None if filter is None else _text("filter", filter, empty=True) or None,
            snaplen=_int("snaplen", snaplen, 1, MAX_SNAPLEN),
            promiscuous=_flag("promiscuous", promiscuous),
            timeout=_timeout(timeout),
            buffer=None if buffer is None else _int("buffer", buffer, 1, _INT_MAX),
            direction=None if direction is None else choice("direction", direction, DIRECTIONS),
            monitor=_flag("monitor", monitor),
            precision=choice("precision", precision, _PRECISIONS),
            chroot=None if chroot is None else _text("chroot", chroot, path=True),
            user=None if user is None else _text("user", user),
            group=None if group is None else _text("group", group),
            inject=_flag("inject", inject),
            cluster_id=None if cluster_id is None else _int("cluster_id", cluster_id, 0, 65535),
            cpu_affinity=None if cpu_affinity is None else _cpus(cpu_affinity, local=not remote),
            stats_interval=None if stats_interval is None else _interval(stats_interval),
            paused=_flag("paused", paused),
        )
        if opts.file is not None:
            live_only = [
                name
                for name, value in (
                    ("promiscuous", opts.promiscuous),
                    ("monitor", opts.monitor),
                    ("buffer", opts.buffer is not None),
                    ("direction", opts.direction is not None),
                    ("inject", opts.inject),
                    ("cluster_id", opts.cluster_id is not None),
                    ("stats_interval", opts.stats_interval is not None),
                    ("chroot", opts.chroot is not None),
                )
                if value
            ]
            if live_only:
                raise ValueError(f"{', '.join(live_only)}: live captures only, not with file")
        return opts

    @property
    def live(self) -> bool:
        """True for a live capture, False when reading a file."""
        return self.file is None

    def argv(self) -> list[str]:
        """The helper's arguments (without the program name), per PROTOCOL.md."""
        args: list[str] = []
        if self.interface is not None:
            args += ["-i", self.interface]
        if self.file is not None:
            args += ["-r", self.file]
        if self.snaplen != MAX_SNAPLEN:
            args += ["-s", str(self.snaplen)]
        if self.promiscuous:
            args.append("-p")
        if self.live and self.timeout != DEFAULT_TIMEOUT:
            args += ["-t", "never" if self.timeout is None else str(self.timeout)]
        if self.buffer is not None:
            args += ["-B", str(self.buffer)]
        if self.direction is not None:
            args += ["-Q", self.direction]
        if self.monitor:
            args.append("-I")
        args += ["-P", self.precision]
        if self.chroot is not None:
            args += ["-d", self.chroot]
        if self.user is not None:
            args += ["-u", self.user]
        if self.group is not None:
            args += ["-g", self.group]
        if self.inject:
            args.append("-j")
        if self.cluster_id is not None:
            args += ["-C", str(self.cluster_id)]
        if self.cpu_affinity is not None:
            args += ["-a", self.cpu_affinity]
        if self.stats_interval is not None:
            args += ["-S", str(max(1, round(self.stats_interval * 1000)))]
        if self.paused:
            args.append("-H")
        args.append("--")
        if self.filter is not None:
            args.append(self.filter)
        return args


def _timeout(value: object) -> Timeout:
    if value is None:
        return None
    if value == "immediate":
        return "immediate"
    if isinstance(value, str):
        raise ValueError(f"timeout must be milliseconds, 'immediate' or None; got {value!r}")
    return _int("timeout", value, 1, _INT_MAX)


def _cpus(value: object, local: bool = True) -> str:
    """``"1,3,5-7"``: CPUs the helper may run on, as taskset(1) lists them
    (``local``: ones this process may run on too)."""
    text = _text("cpu_affinity", value)
    allowed = os.sched_getaffinity(0)
    chosen: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"cpu_affinity: bad CPU list {text!r} (expected e.g. '0,2-3')")
        first, last = int(low), int(high) if dash else int(low)
        if last < first or last >= 1024:
            raise ValueError(f"cpu_affinity: bad range {part!r} in {text!r}")
        chosen.update(range(first, last + 1))
    if local and not chosen <= allowed:
        raise ValueError(
            f"cpu_affinity: CPU {min(chosen - allowed)} is not available "
            f"(this process may use {sorted(allowed)})"
        )
    return text


def _interval(value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"stats_interval must be seconds, not {type(value).__name__}")
    if not 0.001 <= value <= 86400:
        raise ValueError(f"stats_interval must be from 0.001 to 86400 seconds, got {value}")
    return float(value)
