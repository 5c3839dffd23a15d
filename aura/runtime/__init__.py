"""The bottom layer under the three daemons and the CLI: paths and data layout, configuration,
atomic files, pid files, process groups and titles, systemd notification, logs, the daemon loop and
the peer keeper. It imports nothing above itself (aura.ipc is beside it, below).

Kept import-free: the shim imports modules from here under `python -I -S`.
"""
