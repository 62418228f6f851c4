"""The compiled boundary between Python and the C fast path: _runtime (EAL, pools, ports,
workers), _engine (the flow engine and its pipeline configuration), _python (the Python tier:
Batch, Flow, Stream), _control (the control mailbox), _decode (the decoder, for tests). The
layers above call these; the configuration and the user API never import them."""
