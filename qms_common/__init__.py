"""What every part of the system shares: the MQTT contract, the site configuration, the MQTT link."""
