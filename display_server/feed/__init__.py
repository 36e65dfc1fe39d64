"""What the web server knows of the core (follower, state, records), fanned out and pushed to live pages."""
