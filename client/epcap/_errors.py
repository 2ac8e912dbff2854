"""The exceptions epcap raises, all under :class:`EpcapError`.

Bad arguments to :func:`epcap.start` raise the built-in :class:`TypeError`
(unknown option, wrong type) or :class:`ValueError` (bad value) before any
process is spawned. Everything else is one of these.
"""

from __future__ import annotations

from collections.abc import Mapping


class EpcapError(Exception):
    """Base class of every error epcap raises after validating options.

    ``host`` is the host of a capture on another host (``host=``) that
    raised it, None for a local one."""

    host: str | None = None


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


class PolicyError(PermissionDeniedError):
    """The installation's policy refused what was asked (``op`` is
    ``"policy"``): a libpcap pseudo-device, a ``user``, ``group`` or
    ``chroot`` of your own, ``inject`` or a ``buffer`` the installation does
    not allow you, a ``cluster_id`` group of another program, or a stdin or
    stdout that is not a pipe or a socket. Root is never refused."""


class ProtocolError(EpcapError):
    """The helper sent something that breaks the wire protocol: a malformed or
    oversized frame, an unexpected message, or a protocol version this client
    does not speak."""


class ProtocolVersionError(ProtocolError):
    """The helper speaks another protocol version (``version``, as its
    ``ready`` said): it belongs to another epcap. Install this epcap's
    helper where it runs (on ``host``, for a remote capture)."""

    def __init__(self, message: str, *, version: object) -> None:
        super().__init__(message)
        self.version = version


class RemoteError(EpcapError):
    """A capture on another host (``host=``) could not get there: the ssh
    connection, or the helper's installation on that host. ``message`` is
    ssh's or the remote side's own words, ``returncode`` ssh's exit status
    (255 for ssh's own failures)."""

    def __init__(self, message: str, *, host: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.returncode = returncode


class AuthenticationError(RemoteError):
    """ssh could not log in to the host: the key (or user) was refused
    (``Permission denied``). Check ``ssh -o BatchMode=yes HOST true``: epcap
    never asks for a password or a passphrase."""


class HostKeyError(RemoteError):
    """ssh does not know the host's key, or the key changed (``Host key
    verification failed``): connect once with ssh to accept it, or fix
    ``known_hosts`` if it should not have changed."""


class HostUnreachableError(RemoteError):
    """The host could not be reached: its name does not resolve, nothing
    answers on its ssh port, or the connection was lost during the capture
    (no answer to ssh's keepalives)."""


class RemoteHelperNotFoundError(HelperNotFoundError, RemoteError):
    """No helper on the remote host where it was looked for
    (``/usr/local/lib/epcap/epcapd``, or ``progname=``), or one the remote
    user may not run: install it there (``epcap-admin install``)."""


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


OPS: Mapping[str, type[CaptureError]] = {
    # the command line and the wire
    "option": CaptureError,
    "protocol": CaptureError,
    "frame": CaptureError,
    # the invoker policy (epcapd/policy.c, fanout.c, invoker.c)
    "policy": PolicyError,
    "interface": NoSuchDeviceError,
    # credentials, chroot and sandbox (privdrop.c, sandbox_*.c, rlimits.c)
    "privilege": PrivilegeDropError,
    "clearenv": PrivilegeDropError,
    "readlink": PrivilegeDropError,
    "getpwnam": PrivilegeDropError,
    "getgrnam": PrivilegeDropError,
    "getgroups": PrivilegeDropError,
    "capget": PrivilegeDropError,
    "capset": PrivilegeDropError,
    "prctl": PrivilegeDropError,
    "setgroups": PrivilegeDropError,
    "setresgid": PrivilegeDropError,
    "setresuid": PrivilegeDropError,
    "getresuid": PrivilegeDropError,
    "getresgid": PrivilegeDropError,
    "chroot": PrivilegeDropError,
    "fchdir": PrivilegeDropError,
    "chdir": PrivilegeDropError,
    "close": PrivilegeDropError,
    "setrlimit": PrivilegeDropError,
    "seccomp": PrivilegeDropError,
    "sandbox": CaptureError,
    # capture files
    "open": CaptureFileError,
    "fdopen": CaptureFileError,
    "pcap_fopen_offline": CaptureFileError,
    # live captures
    "pcap_findalldevs": CaptureError,
    "pcap_create": CaptureError,
    "pcap_set_snaplen": CaptureError,
    "pcap_set_promisc": CaptureError,
    "pcap_set_rfmon": CaptureError,
    "pcap_set_immediate_mode": CaptureError,
    "pcap_set_timeout": CaptureError,
    "pcap_set_buffer_size": CaptureError,
    "pcap_set_tstamp_precision": CaptureError,
    "pcap_activate": CaptureError,
    "pcap_setdirection": CaptureError,
    "pcap_setnonblock": CaptureError,
    "pcap_get_selectable_fd": CaptureError,
    "sched_setaffinity": CaptureError,
    "setsockopt": CaptureError,
    "fanout": CaptureError,
    "pfring_set_cluster": CaptureError,
    # filters and sending (also in "refused" frames: the capture goes on)
    "pcap_compile": FilterError,
    "pcap_setfilter": FilterError,
    "send": SendError,
    "pcap_inject": SendError,
    # while running
    "pcap_dispatch": CaptureError,
    "poll": CaptureError,
    "read": CaptureError,
    "fcntl": CaptureError,
    "calloc": CaptureError,
    "malloc": CaptureError,
    "strdup": CaptureError,
    "strndup": CaptureError,
}
"""The exception of each ``op`` the helper reports (``epcapd/PROTOCOL.md``,
"Errors"); an op not listed is a :class:`CaptureError`. Where the class is
one of the generic three (:class:`CaptureError`, :class:`PrivilegeDropError`,
:class:`CaptureFileError`), the cause refines it: a permission code or
``EPERM``/``EACCES`` makes it a :class:`PermissionDeniedError`,
``PCAP_ERROR_NO_SUCH_DEVICE`` or ``ENODEV`` a :class:`NoSuchDeviceError`."""

_GENERIC = (CaptureError, PrivilegeDropError, CaptureFileError)
_PERMISSION = frozenset({"PCAP_ERROR_PERM_DENIED", "PCAP_ERROR_PROMISC_PERM_DENIED"})


def error_from_report(report: Mapping[str, object], *, file_mode: bool = False) -> CaptureError:
    """Build the exception for the map of an ``error`` or ``refused`` frame
    (see :data:`OPS`); in ``file_mode`` a failed read is the file's fault."""

    def text(key: str) -> str | None:
        value = report.get(key)
        return value if isinstance(value, str) else None

    op, code, errno = text("op") or "", text("code"), text("errno")
    message = text("message") or "unknown error"
    cls = CaptureFileError if file_mode and op == "pcap_dispatch" else OPS.get(op, CaptureError)
    if cls in _GENERIC:
        if code in _PERMISSION or errno in ("EPERM", "EACCES"):
            cls = PermissionDeniedError
        elif code == "PCAP_ERROR_NO_SUCH_DEVICE" or errno == "ENODEV":
            cls = NoSuchDeviceError
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
    PolicyError,
    SendError,
    ProtocolError,
    ProtocolVersionError,
    HelperExitedError,
    RemoteError,
    AuthenticationError,
    HostKeyError,
    HostUnreachableError,
    RemoteHelperNotFoundError,
):
    _cls.__module__ = "epcap"
