"""The console script `centra-pipeline`: its commands, the in-process runs they start, and
the demo and dev set-ups around the bundled emulator."""
