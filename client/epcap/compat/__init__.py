"""pypcap and pcapy-ng, on epcap: their code runs without root.

``import epcap.compat.pypcap as pcap`` and ``import epcap.compat.pcapy as
pcapy`` give the APIs of pypcap 1.3 and pcapy-ng 2.1 (the same functions,
classes, constants, return values, end-of-file values and exception types),
each handle an epcap capture whose privileged helper opened libpcap: an
existing program changes its import and nothing else. The README's "Coming
from pypcap / pcapy-ng" lists what differs and what cannot work through a
helper (in-process BPF programs, a selectable descriptor), which raises
NotImplementedError saying why.

:data:`defaults` says how the two modules run epcap's helper: ``progname``,
``exec``, ``host`` and ``ssh_options``, as :func:`epcap.start` and
:func:`epcap.interfaces` take them, for every capture and device listing.
Without them the helper is found as :func:`epcap.start` finds it
(``$EPCAPD``, ``$EPCAP_EXEC``, the installed one, ...)::

    import epcap.compat
    epcap.compat.defaults["progname"] = "/opt/epcap/lib/epcap/epcapd"
"""

from ._handle import defaults

__all__ = ["defaults"]
