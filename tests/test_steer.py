"""The worker a flow belongs to (fo_steer.h) is the one a NIC's symmetric RSS picks: the table
hash equals a plain Toeplitz hash of the addresses and ports under the key given to the NIC, and
both directions of a connection get the same one."""
import ipaddress
import random

import pytest

from flowos.boundary._runtime import steer_hash, steer_rss_key

PATTERN = 0x6D5A


def toeplitz(key, data):
    """The Toeplitz hash as RSS defines it (Microsoft's RSS spec), bit by bit."""
    key_bits = int.from_bytes(key, "big")
    key_len = len(key) * 8
    result = 0
    for i in range(len(data) * 8):
        if data[i // 8] & (0x80 >> (i % 8)):
            result ^= (key_bits >> (key_len - 32 - i)) & 0xFFFFFFFF
    return result


def fold(data):
    x = 0
    for i in range(0, len(data), 2):
        x ^= data[i] << 8 | data[i + 1]
    return x


def tuple_bytes(src, dst, sport=None, dport=None):
    data = ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
    if sport is not None:
        data += sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    return data


def random_tuple(rng, family):
    bits = 32 if family == 4 else 128
    addr = lambda: str(ipaddress.ip_address(rng.getrandbits(bits)))
    return addr(), addr(), rng.getrandbits(16), rng.getrandbits(16)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("ports", [True, False], ids=["tcp-udp", "addresses-only"])
def test_table_hash_is_the_nics_toeplitz_hash(family, ports):
    rng = random.Random(family * 10 + ports)
    key = steer_rss_key(PATTERN, 40 if family == 4 else 52)
    for _ in range(200):
        src, dst, sport, dport = random_tuple(rng, family)
        data = tuple_bytes(src, dst, sport, dport) if ports else tuple_bytes(src, dst)
        assert steer_hash(PATTERN, fold(data)) == toeplitz(key, data)


def test_both_directions_hash_alike():
    rng = random.Random(7)
    key = steer_rss_key(PATTERN)
    for _ in range(200):
        src, dst, sport, dport = random_tuple(rng, 4)
        forward = toeplitz(key, tuple_bytes(src, dst, sport, dport))
        assert forward == toeplitz(key, tuple_bytes(dst, src, dport, sport))


def test_the_key_spreads_over_every_bucket():
    """The 64 buckets (RETA entries modulo 64) are all reached, none by more than twice its share."""
    rng = random.Random(3)
    counts = [0] * 64
    for _ in range(64 * 200):
        counts[steer_hash(PATTERN, rng.getrandbits(16)) % 64] += 1
    assert min(counts) > 0 and max(counts) < 2 * 200
