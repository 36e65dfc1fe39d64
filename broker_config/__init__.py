"""Mosquitto configuration for the queue system, and `qms-broker`, which writes a site's
password file, ACL file, TLS certificates and broker configuration."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
