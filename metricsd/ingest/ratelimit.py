"""Token buckets per client (IP and bearer token), bounded in how many clients they track."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache


class TokenBuckets:
    """`rate` requests per second with bursts of `burst`, per key; LRU-bounded to `max_keys`.

    Evicting the least recently seen client forgets its debt, which only ever lets a
    request through, never refuses one wrongly; the table cannot grow without bound.
    """

    def __init__(self, rate: float, burst: int, max_keys: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until one is available."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        self._buckets.move_to_end(key)
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


@lru_cache(maxsize=4096)
def is_loopback(address: str | None) -> bool:
    """Cached: parsing the peer address on every beacon costs more than the rest of the check."""
    if not address:
        return False
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(
    remote: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str:
    """The client's IP: the peer, or, when the peer is a trusted proxy, the right-most
    X-Forwarded-For hop that is not itself a trusted proxy (what nginx's real_ip does)."""
    address = remote or "unknown"
    if not trusted or not forwarded_for or not _in(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if not _is_ip(hop):  # a forged or garbled hop: trust nothing left of it
            return address
        if not _in(hop, trusted):
            return hop
        address = hop
    return address


@lru_cache(maxsize=4096)
def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
