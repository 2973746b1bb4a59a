"""Checks that run before anything is built: config values, memory, devices, threads and a
sweep's folders. Nothing here imports torch, so a bad value is refused in a second."""
