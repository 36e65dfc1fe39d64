"""The web side of the queue system: the waiting-room TV page with Vietnamese speech, and the pages
built on the same parts (app factory, state follower, fan-out, templates)."""
