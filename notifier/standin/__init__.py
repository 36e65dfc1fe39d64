"""A local stand-in for Zalo ZNS and OAuth, eSMS, SpeedSMS and an integrator's webhook receiver.

Tests and `make run` point the notifier's base URLs here instead of the real providers, which our
machines cannot reach. It keeps everything in memory, shows the messages it "delivered" on a phone
inbox page at /, and takes faults to inject through /_standin/faults.
"""
