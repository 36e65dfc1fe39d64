"""Statistics of ticket records and their CSV exports (pure)."""
