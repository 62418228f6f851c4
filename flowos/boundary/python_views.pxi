# Included by _python.pyx (the Python tier): packets, spans of their bytes, the buffers a
# processor may keep, and a flow direction's stream, as a processor sees them.

cdef class Packet:
    """Zero-copy access to one packet's bytes, valid only during process(): after, it raises."""
    cdef rte_mbuf *m
    cdef Batch batch
    cdef int exports

    def __len__(self):
        self.batch.check()
        return self.m.pkt_len

    def tobytes(self):
        """The whole frame, across the segments of a long one (the buffer protocol gives the first)."""
        self.batch.check()
        if self.m.nb_segs == 1:
            return (<char *>fo_pkt_data(self.m))[:self.m.data_len]
        cdef bytes out = PyBytes_FromStringAndSize(NULL, self.m.pkt_len)
        cdef const void *data = rte_pktmbuf_read(self.m, 0, self.m.pkt_len, PyBytes_AS_STRING(out))
        if data != <const void *>PyBytes_AS_STRING(out):
            memcpy(PyBytes_AS_STRING(out), data, self.m.pkt_len)
        return out

    def __getitem__(self, index):
        self.batch.check()
        cdef uint8_t byte
        if isinstance(index, slice):
            return self.tobytes()[index]
        return (<const uint8_t *>rte_pktmbuf_read(self.m, self._index(index), 1, &byte))[0]

    cdef uint32_t _index(self, long i) except? 0:
        if i < 0:
            i += self.m.pkt_len
        if not 0 <= i < self.m.pkt_len:
            raise IndexError("packet index out of range")
        return <uint32_t>i

    def find(self, sub, start=0):
        return self.tobytes().find(sub, start)

    def __getbuffer__(self, Py_buffer *view, int flags):
        self.batch.check()
        export_bytes(view, self, fo_pkt_data(self.m), self.m.data_len, flags)
        self.exports += 1
        self.batch.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1
        self.batch.exports -= 1
        forget_export(view)


cdef class Span:
    """Zero-copy bytes of one packet, from a stream: valid only during process()."""
    cdef const uint8_t *data
    cdef uint32_t length
    cdef Batch batch

    def __len__(self):
        return self.length

    def __getbuffer__(self, Py_buffer *view, int flags):
        self.batch.check()
        export_bytes(view, self, self.data, self.length, flags)
        self.batch.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.batch.exports -= 1
        forget_export(view)


# The packet bytes exported to Python now, by the Py_buffer that holds them: (address, length).
# A memoryview cannot be revoked, so cover_kept_views() needs to know where kept ones point.
cdef dict exported = {}


def cover_kept_views():
    """Once the EAL has given its memory back: maps read-only zero pages wherever a view of
    packet bytes kept past its call still points, so that reading it (from atexit, a __del__, a
    thread) reads zeros instead of crashing the process. Never replaces a live mapping. Returns
    the number of pages mapped."""
    cdef size_t page = sysconf(_SC_PAGESIZE), start, end, at
    cdef void *p
    cdef int mapped = 0
    for address, length in list(exported.values()):
        start = <size_t>address & ~(page - 1)
        end = (<size_t>address + <size_t>length + page - 1) & ~(page - 1)
        for at in range(start, end, page):    # page by page: some may be mapped again already
            p = mmap(<void *>at, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
            if p == <void *>at:
                mapped += 1
            elif p != MAP_FAILED:             # a kernel that took the address as a hint
                munmap(p, page)
    return mapped


cdef void forget_export(Py_buffer *view):
    if exported is not None:   # None once the module is torn down at exit
        exported.pop(<size_t>view, None)


cdef void export_bytes(Py_buffer *view, object owner, const uint8_t *data, Py_ssize_t length, int flags):
    exported[<size_t>view] = (<size_t>data, length)
    view.buf = <void *>data
    view.obj = owner
    view.len = length
    view.readonly = 1
    view.itemsize = 1
    view.format = NULL
    if flags & 4:   # PyBUF_FORMAT
        view.format = b"B"
    view.ndim = 1
    view.shape = NULL
    view.strides = NULL
    view.suboffsets = NULL
    view.internal = NULL


cdef enum:
    ETHER_HEADER_LEN = 14


cdef bytes as_bytes(object data):
    """data's bytes; an int is refused (bytes(6) would be six zero bytes, not what was meant)."""
    if isinstance(data, int):
        raise TypeError(f"expected bytes-like data, got {type(data).__name__}")
    return data if type(data) is bytes else bytes(data)


cdef bint check_splice(int ret) except -1:
    """True for an edit made; False for one refused (counted, nothing changed: see can_change_length)."""
    if ret == -ERANGE:
        raise IndexError("stream offset outside the bytes this processor holds")
    return ret == 0


cdef class Stream:
    """The bytes a processor holds of one flow direction, at absolute stream offsets.

    TCP data is in sequence order, each byte once; UDP/ICMP datagrams in arrival order. Valid
    during process(). Reads are zero-copy when they fall in one packet (view()); edits change
    the packets in place, and for TCP the engine keeps sequence numbers right."""
    cdef fo_batch *b
    cdef Batch batch
    cdef readonly uint8_t dir

    @property
    def start(self):
        """The offset of the first byte held (everything before was released)."""
        self.batch.check()
        return fo_stream_start(self.b, self.dir)

    @property
    def end(self):
        self.batch.check()
        return fo_stream_start(self.b, self.dir) + fo_stream_len(self.b, self.dir)

    def __len__(self):
        self.batch.check()
        return fo_stream_len(self.b, self.dir)

    cdef uint64_t at(self, object off) except? 0:
        return fo_stream_start(self.b, self.dir) if off is None else off

    def read(self, off=None, n=None):
        """n bytes (all to the end if None) from off (the start if None), as bytes."""
        self.batch.check()
        cdef uint64_t o = self.at(off), start = fo_stream_start(self.b, self.dir)
        cdef uint64_t end = start + fo_stream_len(self.b, self.dir)
        if o < start:
            raise IndexError(f"stream offset {o} was released (this processor holds from {start})")
        if o > end:
            return b""
        cdef uint64_t count = end - o if n is None else min(<uint64_t>n, end - o)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, count)
        if count and fo_stream_read(self.b, self.dir, o, PyBytes_AS_STRING(out), <uint32_t>count) != count:
            raise RuntimeError("the stream changed under the read")
        return out

    def __getitem__(self, index):
        if isinstance(index, slice):
            if index.step not in (None, 1):
                raise ValueError("stream slices take no step")
            start = self.start if index.start is None else index.start
            stop = self.end if index.stop is None else index.stop
            return self.read(start, max(0, stop - start))
        data = self.read(index, 1)
        if not data:
            raise IndexError("stream offset outside the bytes held")
        return data[0]

    def view(self, off=None):
        """Zero-copy: the bytes from off to the end of the packet piece holding it."""
        self.batch.check()
        cdef uint32_t avail = 0
        cdef const uint8_t *p = fo_stream_peek(self.b, self.dir, self.at(off), &avail)
        if p == NULL:
            raise IndexError("stream offset outside the bytes held")
        cdef Span span = Span.__new__(Span)
        span.data = p
        span.length = avail
        span.batch = self.batch
        return memoryview(span)

    def find(self, pattern, start=None, end=None):
        """The offset of the first pattern in [start, end), also across packets; -1 if none."""
        self.batch.check()
        cdef bytes pat = as_bytes(pattern)
        cdef uint64_t stop = self.end if end is None else end
        return fo_stream_find(self.b, self.dir, <const char *>pat, len(pat), self.at(start), stop)

    def partial_at(self, pattern):
        """Where a match of pattern may still be starting, cut off by the end of the bytes held:
        the offset of the longest proper prefix of pattern that ends the stream, else end.
        Releasing up to here holds back only what the next bytes could complete."""
        cdef bytes pat = as_bytes(pattern)
        cdef uint64_t end = self.end
        cdef bytes tail = self.read(max(self.start, end - max(len(pat) - 1, 0)))
        cdef bytes first = pat[:1]
        # The earliest place in the tail where pattern could start is the longest such prefix;
        # only the places of pattern's first byte can be one.
        cdef Py_ssize_t j = tail.find(first) if first else -1
        while j >= 0:
            if pat.startswith(tail[j:]):
                return end - (len(tail) - j)
            j = tail.find(first, j + 1)
        return end

    def startswith(self, prefix, off=None):
        cdef bytes p = as_bytes(prefix)
        return self.read(off, len(p)) == p

    def readline(self, off=None, delim=b"\n"):
        """The bytes from off up to and including delim, or None while no delim is held."""
        cdef uint64_t o = self.at(off)
        cdef int64_t hit = self.find(delim, o)
        if hit < 0:
            return None
        return self.read(o, hit + len(delim) - o)

    def packets(self):
        """(stream offset, batch index, length) of each packet of this direction held."""
        self.batch.check()
        cdef uint64_t off = fo_stream_start(self.b, self.dir)
        cdef uint32_t plen
        cdef uint16_t k
        out = []
        first = self.batch.index_of(self.b)
        for k in range(self.b.n):
            if fo_pkt_meta_of(self.b.pkts[k]).dir != self.dir:
                continue
            plen = fo_pkt_level_len(self.b.pkts[k], FO_LEVEL_PAYLOAD)
            if plen:
                out.append((off, first + k, plen))
                off += plen
        return out

    # An edit returns True once made. One FlowOS could not carry right (see can_change_length),
    # or with no mbuf for it, is refused: it returns False, changes nothing and is counted
    # (stream_edits_refused); the processor goes on with its other streams.

    @property
    def can_change_length(self):
        """Whether deletes and inserts anywhere in the bytes held would be made (memory aside):
        normalised TCP (streams: on), UDP, ICMP; never in IP fragments."""
        self.batch.check()
        return fo_stream_can_resize(self.b, self.dir, fo_stream_start(self.b, self.dir), fo_stream_len(self.b, self.dir)) != 0

    def replace(self, off, data):
        """Overwrites len(data) bytes at off. True, or False if refused."""
        self.batch.check()
        cdef bytes d = as_bytes(data)
        made = check_splice(fo_stream_splice(self.b, self.dir, off, len(d), <const char *>d, len(d)))
        self.batch.sync_verdicts(self.b)
        return made

    def delete(self, off, n):
        """Removes n bytes at off. True, or False if refused."""
        self.batch.check()
        made = check_splice(fo_stream_splice(self.b, self.dir, off, n, NULL, 0))
        self.batch.sync_verdicts(self.b)
        return made

    def insert(self, off, data):
        """Inserts data before the byte at off. True, or False if refused."""
        self.batch.check()
        cdef bytes d = as_bytes(data)
        made = check_splice(fo_stream_splice(self.b, self.dir, off, 0, <const char *>d, len(d)))
        self.batch.sync_verdicts(self.b)
        return made

    def release(self, upto):
        """Releases the bytes before upto and holds the rest, and everything after it in the
        flow (on TCP the packet holding upto is cut there after the call; a datagram is held
        whole). Returns the offset released up to."""
        self.batch.check()
        self.batch.push_verdicts(self.b)
        cdef uint64_t done = fo_stream_release(self.b, self.dir, upto)
        self.batch.sync_verdicts(self.b)
        return done
