"""epcap: packet capture for unprivileged Python programs.

A small privileged helper, ``epcapd``, opens libpcap, drops its privileges,
sandboxes itself and streams packets to this package over a socket; one helper
per capture, many at once::

    import epcap
    with epcap.start(interface="eth0", filter="icmp or tcp port 80") as cap:
        for pkt in cap:
            print(pkt.time, pkt.length, pkt.data[:14].hex())
"""

from ._aio import AsyncCapture, start_async
from ._capture import Capture, start
from ._core import StartOptions
from ._errors import (
    AuthenticationError,
    CaptureError,
    CaptureFileError,
    EpcapError,
    FilterError,
    HelperExitedError,
    HelperNotFoundError,
    HostKeyError,
    HostUnreachableError,
    NoSuchDeviceError,
    PermissionDeniedError,
    PolicyError,
    PrivilegeDropError,
    ProtocolError,
    ProtocolVersionError,
    RemoteError,
    RemoteHelperNotFoundError,
    SendError,
)
from ._interfaces import Address, Interface, interfaces, interfaces_async
from ._merge import AsyncMerged, Merged, merge, merge_async
from ._packet import Packet, RawTime
from ._protocol import ACCELERATED

__all__ = [
    "ACCELERATED",
    "Address",
    "AsyncCapture",
    "AsyncMerged",
    "AuthenticationError",
    "Capture",
    "CaptureError",
    "CaptureFileError",
    "EpcapError",
    "FilterError",
    "HelperExitedError",
    "HelperNotFoundError",
    "HostKeyError",
    "HostUnreachableError",
    "Interface",
    "Merged",
    "NoSuchDeviceError",
    "Packet",
    "PermissionDeniedError",
    "PolicyError",
    "PrivilegeDropError",
    "ProtocolError",
    "ProtocolVersionError",
    "RawTime",
    "RemoteError",
    "RemoteHelperNotFoundError",
    "SendError",
    "StartOptions",
    "interfaces",
    "interfaces_async",
    "merge",
    "merge_async",
    "start",
    "start_async",
]
__version__ = "0.1.0"
