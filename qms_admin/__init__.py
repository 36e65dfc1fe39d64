"""qms-admin: install, watch, back up and restore an office (or a province's central server)."""
