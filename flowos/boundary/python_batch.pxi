# Included by _python.pyx (the Python tier): a flow of a batch, and the Batch a processor's
# process() gets: its packets by flow, verdicts, vector fields, injections.

cdef class Flow:
    """One flow of a batch: its 5-tuple as its opener sent it, its packets, its state. Valid
    during the call it was handed to (process, or flow_end): after, it raises."""
    cdef fo_batch *fb                # None for a flow handed to flow_end
    cdef const fo_flow *flow
    cdef void **state_slot
    cdef readonly object packets     # the flow's packets' indices in the batch (a range)
    cdef Batch batch                 # None for a flow handed to flow_end
    cdef bint ended                  # a flow_end flow, after flow_end returned

    cdef int check(self) except -1:
        if self.ended:
            raise RuntimeError("this flow is only valid during the call it was handed to")
        if self.batch is not None:
            self.batch.check()
        return 0

    cdef object addr(self, bint source):
        self.check()
        cdef const uint8_t *a = &self.flow.key.addr_lo[0]
        if (self.flow.opener_is_lo == 1) != source:
            a = &self.flow.key.addr_hi[0]
        if self.flow.key.family == 4:
            return ".".join(str(a[i]) for i in range(4))
        if self.flow.key.family == 6:
            import ipaddress
            return str(ipaddress.IPv6Address(bytes(a[:16])))
        return None

    @property
    def src(self):
        return self.addr(True)

    @property
    def dst(self):
        return self.addr(False)

    @property
    def sport(self):
        self.check()
        return self.flow.key.port_lo if self.flow.opener_is_lo else self.flow.key.port_hi

    @property
    def dport(self):
        self.check()
        return self.flow.key.port_hi if self.flow.opener_is_lo else self.flow.key.port_lo

    @property
    def proto(self):
        self.check()
        return self.flow.key.proto

    @property
    def id(self):
        self.check()
        return self.flow.id

    def stream(self, int dir=0):
        """The stream of one direction (0: from the flow's opener, 1: the other way)."""
        self.check()
        if self.fb == NULL:
            raise RuntimeError("streams exist only in process()")
        if dir not in (0, 1):
            raise ValueError("a stream's direction is 0 (from the opener) or 1")
        cdef Stream s = Stream.__new__(Stream)
        s.b = self.fb
        s.batch = self.batch
        s.dir = dir
        return s

    def streams(self):
        """Both directions' streams: (from the opener, to the opener)."""
        return self.stream(0), self.stream(1)

    @property
    def counts(self):
        self.check()
        """(packets, bytes) by direction, as the engine counted them so far."""
        return ((self.flow.packets[0], self.flow.bytes[0]), (self.flow.packets[1], self.flow.bytes[1]))

    @property
    def state(self):
        """Any object, kept for this (flow, processor) until the flow ends."""
        self.check()
        cdef PyObject *obj = <PyObject *>self.state_slot[0]
        return None if obj == NULL else <object>obj

    @state.setter
    def state(self, value):
        self.check()
        cdef PyObject *old = <PyObject *>self.state_slot[0]
        if value is None:
            self.state_slot[0] = NULL
        else:
            Py_INCREF(value)
            self.state_slot[0] = <void *>value
        Py_XDECREF(old)


cdef Flow make_flow(const fo_flow *flow, void *state, Batch batch, object packets, fo_batch *fb=NULL):
    cdef Flow f = Flow.__new__(Flow)
    f.fb = fb
    f.flow = flow
    f.state_slot = <void **>state
    f.batch = batch
    f.packets = packets
    return f


cdef class Batch:
    """Every packet of one burst ready for a processor, grouped by flow. Valid during process()."""
    cdef fo_batch *batches
    cdef uint16_t n_batches
    cdef readonly uint32_t size
    cdef rte_mbuf **pkts             # flat: the engine lays batch b's packets after batch b-1's
    cdef uint16_t *ports             # redirect targets: the engine's out_ports, flat like pkts
    cdef readonly object verdicts    # array('B'), preset to pass
    cdef Py_buffer held              # verdicts' buffer, exported during the call: it cannot change size
    cdef uint8_t *v                  # held's items, size of them
    cdef bint holding                # held is exported (from new_batch to the end of run)
    cdef bint valid
    cdef int exports
    cdef list _flows
    cdef list field_arrays           # by fo_field: the array the last read returned, for reuse

    cdef int check(self) except -1:
        if not self.valid:
            raise RuntimeError("this batch (and its packets) is only valid during process()")
        return 0

    cdef int check_index(self, uint32_t i) except -1:
        self.check()
        if i >= self.size:
            raise IndexError("packet index out of range")
        return 0

    cdef int hold_verdicts(self) except -1:
        """Exports batch.verdicts for the call: an array('B') that exports its buffer refuses to
        change size (BufferError), so pop(), del, append() or a slice of another length raise in
        process() instead of leaving the engine to read verdicts past the array."""
        PyObject_GetBuffer(self.verdicts, &self.held, PyBUF_WRITABLE)
        self.v = <uint8_t *>self.held.buf
        self.holding = True
        return 0

    cdef void let_go_verdicts(self):
        if self.holding:
            self.holding = False
            self.v = NULL
            PyBuffer_Release(&self.held)

    cdef uint32_t first(self, uint16_t b):
        """Batch b's first flat index: where its packets start in the engine's flat array."""
        return <uint32_t>(self.batches[b].pkts - self.pkts)

    cdef uint16_t owner_of(self, uint32_t i):
        """The fo_batch that holds flat index i (< size): a binary search over the batches' starts."""
        cdef uint16_t lo = 0, hi = self.n_batches - 1, mid
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.first(mid) <= i:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def __len__(self):
        return self.size

    def flows(self):
        """The batch's flows, each with .packets: the indices of its packets in this batch."""
        self.check()
        if self._flows is None:
            self._flows = [make_flow(self.batches[b].flow, self.batches[b].state, self,
                                     range(self.first(b), self.first(b) + self.batches[b].n), &self.batches[b])
                           for b in range(self.n_batches)]
        return self._flows

    cdef uint32_t index_of(self, fo_batch *fb):
        return self.first(fb - self.batches)

    cdef void push_verdicts(self, fo_batch *fb):
        """The Python verdicts of fb's packets into fb, for C code that reads them."""
        cdef uint32_t first = self.index_of(fb), k
        for k in range(fb.n):
            fb.verdicts[k] = self.v[first + k]

    cdef void sync_verdicts(self, fo_batch *fb):
        """fb's verdicts (the C stream code sets them) back into batch.verdicts."""
        cdef uint32_t first = self.index_of(fb), k
        cdef uint8_t *v = self.v
        for k in range(fb.n):
            if fb.verdicts[k] != FO_PASS and v[first + k] == FO_PASS:
                v[first + k] = fb.verdicts[k]
            elif fb.verdicts[k] == FO_HOLD:
                v[first + k] = FO_HOLD

    def packet(self, uint32_t i):
        """Zero-copy view of packet i's bytes (its first segment)."""
        self.check_index(i)
        cdef Packet p = Packet.__new__(Packet)
        p.m = self.pkts[i]
        p.batch = self
        return p

    # Vector accessors: one C loop each (fo_field_vector), into an array.array (buffer protocol:
    # NumPy wraps it without a copy). Each read fills an array of its own: the one the last read of
    # that field returned when nothing holds it any more (not the caller, not a view, not a weak
    # reference: unshared), else a new one. So an array a processor keeps keeps its burst's values,
    # and one it let go is refilled without an allocation. The loop keeps the GIL: for a burst it
    # takes less time than releasing and taking it again.
    cdef object field(self, fo_field kind):
        self.check()
        cdef array.array template = FIELD_TEMPLATES[<int>kind]
        cdef Py_ssize_t items = self.size * (fo_field_size(kind) // template.ob_descr.itemsize)
        cdef PyObject *spare = PyList_GET_ITEM(self.field_arrays, <Py_ssize_t>kind)
        cdef array.array out
        if spare != <PyObject *>None and unshared(spare):
            out = <array.array>spare
            array.resize_smart(out, items)
        else:
            out = array.clone(template, items, zero=False)
            self.field_arrays[<int>kind] = out
        fo_field_vector(kind, self.pkts, self.size, out.data.as_voidptr)
        return out

    @property
    def length(self):
        return self.field(FO_FIELD_LENGTH)

    @property
    def proto(self):
        return self.field(FO_FIELD_PROTO)

    @property
    def sport(self):
        return self.field(FO_FIELD_SPORT)

    @property
    def dport(self):
        return self.field(FO_FIELD_DPORT)

    @property
    def tcp_flags(self):
        return self.field(FO_FIELD_TCP_FLAGS)

    @property
    def ttl(self):
        return self.field(FO_FIELD_TTL)

    @property
    def dir(self):
        return self.field(FO_FIELD_DIR)

    @property
    def payload_len(self):
        return self.field(FO_FIELD_PAYLOAD_LEN)

    @property
    def src4(self):
        """IPv4 source addresses as integers (host order; 0 for packets that are not IPv4)."""
        return self.field(FO_FIELD_SRC4)

    @property
    def dst4(self):
        return self.field(FO_FIELD_DST4)

    @property
    def src(self):
        """Source addresses, 16 bytes per packet (IPv4 as ::ffff:a.b.c.d; zeros if not IP), in
        one array('B'): NumPy wraps it as np.frombuffer(batch.src, np.uint8).reshape(-1, 16)."""
        return self.field(FO_FIELD_SRC)

    @property
    def dst(self):
        return self.field(FO_FIELD_DST)

    # Verdicts, one packet at a time (batch.verdicts[i] = ... works too).
    def drop(self, uint32_t i):
        self.check_index(i)
        self.v[i] = FO_DROP

    def hold(self, uint32_t i):
        self.check_index(i)
        self.v[i] = FO_HOLD

    def redirect(self, uint32_t i, uint16_t port):
        """Sends packet i out of port (an id from setup's context.ports; the engine drops and
        counts a redirect to a port that does not exist)."""
        self.check_index(i)
        self.v[i] = FO_REDIRECT
        self.ports[i] = port

    def write(self, uint32_t i, uint32_t offset, data):
        """Overwrites bytes of packet i in place; its checksums are repaired before it leaves."""
        self.check_index(i)
        cdef bytes b = as_bytes(data)
        if offset + len(b) > self.pkts[i].data_len:
            raise ValueError(f"write of {len(b)} bytes at {offset} past the packet's {self.pkts[i].data_len}")
        memcpy(fo_pkt_data(self.pkts[i]) + offset, <const char *>b, len(b))
        fo_pkt_meta_of(self.pkts[i]).flags |= FO_PKT_EDITED     # kept if it is held afterwards
        if self.v[i] == FO_PASS:
            self.v[i] = FO_MODIFIED

    def set_ttl(self, uint32_t i, uint8_t ttl):
        """Sets the IPv4 TTL / IPv6 hop limit of packet i."""
        self.check_index(i)
        cdef fo_pkt_meta *meta = fo_pkt_meta_of(self.pkts[i])
        if meta.flags & FO_PKT_IPV4:
            self.write(i, meta.offset[1] + 8, bytes([ttl]))
        elif meta.flags & FO_PKT_IPV6:
            self.write(i, meta.offset[1] + 7, bytes([ttl]))
        else:
            raise ValueError("packet is not IP")

    def inject(self, uint32_t i, data, bint after=True):
        """Adds a new packet (bytes of a whole frame) to packet i's flow, next to it."""
        self.check_index(i)
        cdef bytes b = as_bytes(data)
        cdef uint16_t owner = self.owner_of(i)
        cdef fo_batch *fb = &self.batches[owner]
        cdef rte_mbuf *m = rte_pktmbuf_alloc(fo_batch_pool(fb))
        if m == NULL:
            raise MemoryError("no mbuf to inject into")
        cdef uint16_t room = rte_pktmbuf_tailroom(m)
        if len(b) > room:
            rte_pktmbuf_free(m)
            raise ValueError(f"an injected packet holds at most {room} bytes, got {len(b)}")
        memcpy(rte_pktmbuf_append(m, len(b)), <const char *>b, len(b))
        ret = fo_batch_inject(fb, i - self.first(owner), m, after)
        if ret == -EINVAL:   # i is checked: the frame is short
            raise ValueError(f"an injected frame needs at least its {ETHER_HEADER_LEN}-byte Ethernet header, "
                             f"got {len(b)} bytes")
        if ret != 0:
            raise RuntimeError("the flow holds too much to take another packet")
