"""The per-host attach service: wires container interfaces onto the overlay (docs/agent-api.md)."""
