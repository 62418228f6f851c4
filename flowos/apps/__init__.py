"""The applications, on top of everything else: flowos-run (cli, check), flowos-ctl (ctl), the
dashboard, flowos-devbind (devbind)."""
