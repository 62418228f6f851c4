"""Running a box: the EAL's command line and hugepages, the runner (pools, ports, shards, workers),
worker processes and the supervisor, the watchdog, the control server and its commands,
reloads, statistics and output."""
