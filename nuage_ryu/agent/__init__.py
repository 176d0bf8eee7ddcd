"""The VRS agent: the pure per-bridge core, the bridge I/O around it, its metrics."""
