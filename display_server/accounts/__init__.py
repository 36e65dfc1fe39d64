"""Who may do what: accounts and password hashes, sessions and login, rate limits."""
