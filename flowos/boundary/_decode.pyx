# cython: language_level=3
"""The packet decoder of the flow engine (ext/src/fo_decode.c), callable from Python.

For tests and tools, one packet at a time: the fast path calls fo_decode() from C. Needs no EAL.
"""
from libc.stdint cimport uint8_t, uint32_t

from flowos.includes.fo cimport *
from flowos.facts import LEVELS


FLAGS = (
    (FO_PKT_VLAN, "vlan"),
    (FO_PKT_IPV4, "ipv4"),
    (FO_PKT_IPV6, "ipv6"),
    (FO_PKT_FRAGMENT, "fragment"),
    (FO_PKT_FIRST_FRAG, "first_frag"),
    (FO_PKT_MALFORMED, "malformed"),
    (FO_PKT_L4_PORTS, "l4_ports"),
)

ERRORS = tuple(fo_decode_error_name(<fo_decode_error>e).decode()
               for e in range(FO_DECODE_ERROR_COUNT))

NO_LEVEL = FO_NO_LEVEL
MAX_VLAN = FO_DECODE_MAX_VLAN
MAX_EXT = FO_DECODE_MAX_EXT
MAX_LEN = FO_DECODE_MAX_LEN


def decode(const uint8_t[::1] data not None):
    """Decodes one Ethernet frame (any bytes-like object) into a dict of struct fo_decoded's
    fields: the offset of each level ("l2", "l3", "l4", "payload"; None where absent), "end",
    "ether_type", "vlan_tci", "ip_proto", "tcp_flags", "flags" (a list of names), "error" (a
    name, None when well formed), "sport", "dport", "frag_id" and "frag_offset"."""
    return _decode(data, False)


def decode_general(const uint8_t[::1] data not None):
    """decode() through the general decoder alone (fo_decode_general: without the straight path
    for the common case). Its answer must be decode()'s for every frame."""
    return _decode(data, True)


cdef dict _decode(const uint8_t[::1] data, bint general):
    cdef fo_decoded d
    cdef const uint8_t *p = NULL
    # The decoder looks at no more than FO_DECODE_MAX_LEN bytes: say no more, so n cannot wrap.
    cdef uint32_t n = <uint32_t>min(data.shape[0], FO_DECODE_MAX_LEN)

    if n > 0:
        p = &data[0]
    with nogil:
        if general:
            fo_decode_general(p, n, &d)
        else:
            fo_decode(p, n, &d)
    result = {name: (None if d.offset[i] == FO_NO_LEVEL else d.offset[i])
              for i, name in enumerate(LEVELS)}
    result.update(
        end=d.end,
        ether_type=d.ether_type,
        vlan_tci=d.vlan_tci,
        ip_proto=d.ip_proto,
        tcp_flags=d.tcp_flags,
        flags=[name for bit, name in FLAGS if d.flags & bit],
        error=None if d.error == FO_DECODE_OK else ERRORS[d.error],
        sport=d.sport,
        dport=d.dport,
        frag_id=d.frag_id,
        frag_offset=d.frag_offset,
    )
    return result
