"""The counter agent: joins a counter's LED panel and call keypad (serial lines) to the core (MQTT)."""
