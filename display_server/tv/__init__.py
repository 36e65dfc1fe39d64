"""The waiting-room TV: its page, the pure view per TV filter, and the announcer that turns calls into speech."""
