"""The VRS agent: pure per-bridge core, bridge I/O around it, metrics, and the per-host attach service."""
