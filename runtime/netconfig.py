"""Interface configuration from inside a container, with plain ioctls.

The container init runs under ``python -S`` (no site-packages, for a fast
start), so it cannot use pyroute2. Bringing ``lo`` up and giving ``eth0`` an
address and netmask needs nothing more than the classic SIOCSIF* ioctls; the
kernel then adds the connected /24 route by itself. No default route is set:
a container on the lab network reaches its lab and nothing else.
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` costs the init ~3 ms of imports
import fcntl
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
IFF_UP = 0x1


def _ifreq_flags(ifname: str, flags: int = 0) -> bytes:
    return struct.pack("16sh22x", ifname.encode(), flags)


def _ifreq_addr(ifname: str, address: str) -> bytes:
    sockaddr = struct.pack("HH4s8x", socket.AF_INET, 0, socket.inet_aton(address))
    return struct.pack("16s16s8x", ifname.encode(), sockaddr)


def set_up(sock: socket.socket, ifname: str) -> None:
    raw = fcntl.ioctl(sock, SIOCGIFFLAGS, _ifreq_flags(ifname))
    flags = struct.unpack("16sh22x", raw)[1]
    fcntl.ioctl(sock, SIOCSIFFLAGS, _ifreq_flags(ifname, flags | IFF_UP))


def prefix_to_mask(prefixlen: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF
    return socket.inet_ntoa(struct.pack("!I", bits))


def configure(interface: str | None, address: str | None, prefixlen: int) -> None:
    """Bring ``lo`` up and, when given, configure ``interface`` with ``address``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        set_up(sock, "lo")
        if interface and address:
            fcntl.ioctl(sock, SIOCSIFADDR, _ifreq_addr(interface, address))
            fcntl.ioctl(sock, SIOCSIFNETMASK, _ifreq_addr(interface, prefix_to_mask(prefixlen)))
            set_up(sock, interface)
    finally:
        sock.close()
