"""The queue core: the single writer of tickets and counters, speaking protocol v1 over MQTT."""
