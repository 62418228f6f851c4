"""The decoder's straight path for the common case (ext/src/fo_decode.c, decode_common: Ethernet,
at most one VLAN tag, IPv4 without options or IPv6 without extension headers, TCP or UDP)
against the general decoder alone (fo_decode_general): for every frame, fo_decode() must give
exactly what the general decoder gives, malformed or not.

The frames: test_decode.py's corpora (well-formed packets of every feature, garbled ones, every
truncation of the small ones, noise and mutations), the captures in tests/data, and frames that
Hypothesis builds around each check of the straight path (tag count, IPv4 version/IHL, total
length, fragment bits, IPv6 payload length, TCP data offset, UDP length, cuts at any byte).
"""
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CAPTURES, packets
from flowos.boundary._decode import decode, decode_general
from test_decode import GARBLED, WELL_FORMED, _random_corpus, _truncation_sources


def same(raw):
    assert decode(raw) == decode_general(raw), raw.hex()


def test_corpora_and_captures():
    corpus = list(WELL_FORMED.values()) + [raw for raw, _ in GARBLED.values()]
    for raw in _truncation_sources().values():
        corpus += [raw[:cut] for cut in range(len(raw) + 1)]
    corpus += _random_corpus()
    corpus += [raw for path in CAPTURES for raw in packets(path)]
    for raw in corpus:
        same(raw)


def near(exact, width):
    """A length field: exact, a little off either way, or anything."""
    return st.one_of(st.just(exact), st.integers(max(exact - 3, 0), min(exact + 3, width)),
                     st.integers(0, width))


@st.composite
def frames(draw):
    tags = draw(st.sampled_from([0, 0, 1, 1, 2]))
    family = draw(st.sampled_from([4, 6, 0]))
    ether_type = {4: 0x0800, 6: 0x86DD, 0: draw(st.sampled_from([0x0806, 0x8100, 0x88A8, 0x0000]))}[family]
    proto = draw(st.sampled_from([6, 17, 6, 17, 1, 132, 0, 44, 60, draw(st.integers(0, 255))]))
    if proto == 6:
        doff = draw(st.sampled_from([5, 5, 6, 15, 4, 0, draw(st.integers(0, 15))]))
        l4 = (bytes(draw(st.binary(min_size=12, max_size=12))) + bytes([doff << 4])
              + draw(st.binary(min_size=7, max_size=7)) + bytes(max(doff * 4 - 20, 0)))
    else:
        l4 = draw(st.binary(min_size=8, max_size=8))
    payload = l4 + draw(st.binary(max_size=24))
    padding = draw(st.binary(max_size=8))       # Ethernet padding, or bytes the lengths below count
    # Lengths are exact for the transport, or up to the frame's end, or a little off, or anything.
    ip_len = len(payload) + draw(st.integers(0, len(padding)))
    if proto == 17:
        udp_len = draw(near(ip_len - draw(st.integers(0, ip_len - len(payload))), 0xFFFF))
        payload = payload[:4] + struct.pack("!H", udp_len) + payload[6:]

    frame = bytes(12)
    for _ in range(tags):
        frame += struct.pack("!HH", draw(st.sampled_from([0x8100, 0x88A8])), draw(st.integers(0, 0xFFFF)))
    frame += struct.pack("!H", ether_type)
    if family == 4:
        vihl = draw(st.sampled_from([0x45, 0x45, 0x46, 0x44, 0x55, draw(st.integers(0, 255))]))
        options = bytes(max((vihl & 15) * 4 - 20, 0))
        total = draw(near(20 + len(options) + ip_len, 0xFFFF))
        frag = draw(st.sampled_from([0, 0x4000, 0x2000, 0x0001, 0x6000, draw(st.integers(0, 0xFFFF))]))
        frame += struct.pack("!BBHHHBBH4s4s", vihl, 0, total, 1, frag, 64, proto, 0, b"\x0a\0\0\1",
                             b"\x0a\0\0\2") + options
    elif family == 6:
        version = draw(st.sampled_from([0x60, 0x60, 0x40, draw(st.integers(0, 255))]))
        plen = draw(near(ip_len, 0xFFFF))
        frame += bytes([version, 0, 0, 0]) + struct.pack("!HBB", plen, proto, 64) + bytes(range(32))
    frame += payload + padding
    cut = draw(st.one_of(st.just(len(frame)), st.integers(0, len(frame))))
    return frame[:cut]


@settings(max_examples=3000, deadline=None, derandomize=True, database=None)
@given(frames())
def test_built_frames(raw):
    same(raw)

