"""The watchdog against a real NVIDIA GPU (and the stand-in NVML where there is none)."""
