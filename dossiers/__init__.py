"""The dossier service (hồ sơ): the single writer of dossier state (docs/protocol.md, "Dossiers")."""
