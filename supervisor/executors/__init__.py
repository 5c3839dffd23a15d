"""Where workers run: `base.Executor` is the interface, `local.LocalExecutor` runs each worker as a
local process under its shim."""
