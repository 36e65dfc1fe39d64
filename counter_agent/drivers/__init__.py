"""Device drivers: one module per device protocol, listed here by the name the configuration
uses (`driver = "qms-serial"`)."""

from __future__ import annotations

from counter_agent.drivers.base import Driver
from counter_agent.drivers.modbus_led import ModbusLedDriver
from counter_agent.drivers.qms_serial import QmsSerialDriver

DRIVERS: dict[str, type[Driver]] = {
    QmsSerialDriver.name: QmsSerialDriver,
    ModbusLedDriver.name: ModbusLedDriver,
}
