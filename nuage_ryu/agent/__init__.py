"""The VRS agent: pure core, bridge I/O and the per-host attach service."""
