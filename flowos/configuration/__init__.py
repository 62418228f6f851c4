"""Reading and checking a run's configuration, pure Python: config (the YAML file, every section),
flows (flow definitions and processors), devices (ports), port_settings (NIC settings). Each
fact is validated here once; the runtime below trusts what it is given."""
