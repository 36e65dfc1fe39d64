"""The device side of every driver, on real pseudo-terminals: LED panels and call keypads
without hardware, for the demo, the tests and firmware writers.

    python -m counter_agent.simulator --config agent.toml        # every port of an agent's file
    python -m counter_agent.simulator --link /tmp/bus --driver qms-serial --device 1=quay-1
    python -m counter_agent.simulator press --config agent.toml --counter 1 N
    python -m counter_agent.simulator show --config agent.toml

See docs/hardware.md.
"""
