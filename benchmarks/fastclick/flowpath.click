// FastClick's flow path of FlowOS issue 15, on one thread: FLOWS UDP 5-tuples of 64-byte frames
// (60 bytes without the FCS) -> CheckIPHeader -> FlowIPManager_DPDK (rte_hash over the 5-tuple)
// -> FlowCounter -> Discard. compare.py reads the packets generated and the time at the
// DriverManager's two MARK lines (after WARMUP, then SECONDS later); README.md here says how to run it.
//
// The generator: FastUDPFlows makes one template packet per flow (random ports) and sends copies.
// SEQUENTIAL true sends the flows in a fixed round-robin order, each once per round, as FlowOS's
// fo_gen does (a fixed stride through its connections); false draws a flow at random per packet.
// DUPLICATE true copies the template into a fresh buffer, so that the path reads headers the
// generator has just written, as FlowOS's does (false: a clone sharing the template's buffer).
// FLOWSIZE: a flow keeps its ports for 2^31 packets, so there are FLOWS flows for the whole run.
define($FLOWS 1000, $CAPACITY 2048, $DUPLICATE true, $SEQUENTIAL true, $WARMUP 0.5s, $SECONDS 2s)

src :: FastUDPFlows(RATE 0, LIMIT -1, LENGTH 60,
                    SRCETH 02:00:00:00:00:01, SRCIP 10.0.0.1,
                    DSTETH 02:00:00:00:00:02, DSTIP 172.16.0.1,
                    FLOWS $FLOWS, FLOWSIZE 2147483647, CHECKSUM true, BURST 32, DUPLICATE $DUPLICATE, SEQUENTIAL $SEQUENTIAL)
    -> CheckIPHeader(OFFSET 14)
    -> manager :: FlowIPManager_DPDK(CAPACITY $CAPACITY)
    -> counter :: FlowCounter
    -> Discard;

DriverManager(wait $WARMUP,
              print "MARK0 $(now) $(src.count)",
              wait $SECONDS,
              print "MARK1 $(now) $(src.count)",
              print "FLOWS $(manager.count)",
              stop);
