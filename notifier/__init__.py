"""qms-notify: tells citizens about their turn on Zalo (ZNS) and by SMS, and integrators by
signed webhooks, from a durable outbox, so each message goes out exactly once."""
