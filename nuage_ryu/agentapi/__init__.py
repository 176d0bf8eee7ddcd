"""The per-host agent's local API (HTTP/1.1 + JSON over a unix socket); see docs/agent-api.md."""
