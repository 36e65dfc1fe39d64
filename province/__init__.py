"""The province service: every office's events, presence and state, in PostgreSQL."""
