// The generator's share of flowpath.click: the same FastUDPFlows straight into Discard.
// compare.py subtracts its cycles per packet (same FLOWS, same options) from the flow path's.
define($FLOWS 1000, $CAPACITY 2048, $DUPLICATE true, $SEQUENTIAL true, $WARMUP 0.5s, $SECONDS 2s)

src :: FastUDPFlows(RATE 0, LIMIT -1, LENGTH 60,
                    SRCETH 02:00:00:00:00:01, SRCIP 10.0.0.1,
                    DSTETH 02:00:00:00:00:02, DSTIP 172.16.0.1,
                    FLOWS $FLOWS, FLOWSIZE 2147483647, CHECKSUM true, BURST 32, DUPLICATE $DUPLICATE, SEQUENTIAL $SEQUENTIAL)
    -> Discard;

DriverManager(wait $WARMUP,
              print "MARK0 $(now) $(src.count)",
              wait $SECONDS,
              print "MARK1 $(now) $(src.count)",
              print "FLOWS 0",
              stop);
