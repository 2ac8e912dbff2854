"""The exceptions epcap raises, all under :class:`EpcapError`.

Bad arguments to :func:`epcap.start` raise the built-in :class:`TypeError`
(unknown option, wrong type) or :class:`ValueError` (bad value) before any
process is spawned. Everything else is one of these.
"""

from __future__ import annotations

from collections.abc import Mapping


class EpcapError(Exception):
    """Base class of every error epcap raises after validating options."""


class HelperNotFoundError(EpcapError):
    """The ``epcapd`` helper binary could not be found (see ``progname=``)."""


class CaptureError(EpcapError):
    """The helper reported a failure in an ``error`` frame.

    Attributes mirror the frame (``epcapd/PROTOCOL.md``): ``op`` is what failed
    (``"pcap_activate"``, ``"open"``, ...), ``code`` libpcap's status name or
    ``None``, ``errno`` the errno name (``"ENOENT"``) or ``None``, and
    ``message`` libpcap's or the system's own message.
    """

    def __init__(
        self,
        message: str,
        *,
        op: str = "",
        code: str | None = None,
        errno: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.op = op
        self.code = code
        self.errno = errno

    def __str__(self) -> str:
        detail = ", ".join(x for x in (self.op, self.code, self.errno) if x)
        return f"{self.message} ({detail})" if detail else self.message


class FilterError(CaptureError):
    """The BPF filter expression did not compile or could not be set."""


class NoSuchDeviceError(CaptureError):
    """The interface does not exist, or no capture device was found."""


class PermissionDeniedError(CaptureError):
    """Not allowed: no privilege to capture, or a file the user cannot read."""


class CaptureFileError(CaptureError):
    """The capture file is missing, unreadable as pcap/pcapng, or corrupt."""


class SendError(CaptureError):
    """A packet could not be sent (injection not enabled, too large for the
    interface, ...); the capture goes on."""


class PrivilegeDropError(CaptureError):
    """Chroot or the drop to ``user``/``group`` failed (unknown user or group,
    missing chroot directory, ...): the helper refuses to run with privilege."""


class ProtocolError(EpcapError):
    """The helper sent something that breaks the wire protocol: a malformed or
    oversized frame, an unexpected message, or a protocol version this client
    does not speak."""


class HelperExitedError(EpcapError):
    """The helper ended without saying why: killed, crashed, or exited
    before its ``ready`` or ``eof`` frame.

    ``returncode`` is its exit status (negative: the signal that killed it,
    as in :mod:`subprocess`), ``stderr`` what it (or ``sudo``) wrote there.
    """

    def __init__(self, message: str, *, returncode: int | None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


_FILTER_OPS = frozenset({"pcap_compile", "pcap_setfilter"})
_FILE_OPS = frozenset({"open", "fdopen", "pcap_fopen_offline"})
_DROP_OPS = frozenset(
    {
        "privilege",
        "chroot",
        "chdir",
        "getpwnam",
        "getgrnam",
        "setgroups",
        "setresgid",
        "setresuid",
        "prctl",
        "setrlimit",
    }
)
_PERMISSION = frozenset({"PCAP_ERROR_PERM_DENIED", "PCAP_ERROR_PROMISC_PERM_DENIED"})


def error_from_report(
    report: Mapping[str, object], *, file_mode: bool = False, command: str | None = None
) -> CaptureError:
    """Build the exception for the map of an ``error`` frame, or of a
    ``refused`` frame answering ``command``; in ``file_mode`` a failed read
    is the file's fault."""

    def text(key: str) -> str | None:
        value = report.get(key)
        return value if isinstance(value, str) else None

    op, code, errno = text("op") or "", text("code"), text("errno")
    message = text("message") or "unknown error"
    cls: type[CaptureError]
    if command == "send":
        cls = SendError
    elif code in _PERMISSION or errno in ("EPERM", "EACCES"):
        cls = PermissionDeniedError
    elif op in _FILTER_OPS:
        cls = FilterError
    elif code == "PCAP_ERROR_NO_SUCH_DEVICE" or errno == "ENODEV":
        cls = NoSuchDeviceError
    elif op in _FILE_OPS or (file_mode and op == "pcap_dispatch"):
        cls = CaptureFileError
    elif op in _DROP_OPS:
        cls = PrivilegeDropError
    else:
        cls = CaptureError
    return cls(message, op=op, code=code, errno=errno)


for _cls in (
    EpcapError,
    HelperNotFoundError,
    CaptureError,
    FilterError,
    NoSuchDeviceError,
    PermissionDeniedError,
    CaptureFileError,
    PrivilegeDropError,
    SendError,
    ProtocolError,
    HelperExitedError,
):
    _cls.__module__ = "epcap"
