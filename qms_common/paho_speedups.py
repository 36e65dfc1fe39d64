"""Faster drop-ins for paho-mqtt's MQTT 5 `Properties` and `ReasonCode`.

paho builds a `Properties` object for every MQTT 5 packet it sends or receives (each PUBLISH,
each PUBACK), and its implementation rebuilds two lookup tables in every constructor and
finds a property by scanning every name with `str.replace`. Measured here, that was the
largest single cost of the queue core: about 50 µs per object, several objects per command.
`ReasonCode`, made for every PUBACK, copies its table of names in each constructor.

`FastProperties` and `FastReasonCode` keep paho's behaviour (the same attributes, validation,
errors, wire format) with the tables built once. `install()` makes paho use them;
tests/test_paho_speedups.py checks them against paho's own classes. Pinned to the paho versions
they were checked with.

`fast_socket_io()` cuts the system calls of one client's plain TCP connection: paho reads each
packet with at least three recv() calls (its type byte, its length byte by byte, then the rest)
and writes each packet with a send() of its own; under the core's load that was a dozen system
calls per command. With it, a recv() takes what the socket has (up to 64 KiB), each whole packet
in it is taken in one piece, and packets queued together leave in one send().
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from typing import Any

import aiomqtt
import paho.mqtt._packet as _paho_packet
import paho.mqtt.client as _paho_client
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties, VariableByteIntegers
from paho.mqtt.reasoncodes import ReasonCode

_TEMPLATE = Properties(PacketTypes.PUBLISH)
_TYPES: list[str] = _TEMPLATE.types
_NAMES: dict[str, int] = _TEMPLATE.names
_PROPERTIES: dict[int, tuple[int, list[int]]] = _TEMPLATE.properties
_IDENT_BY_COMPRESSED = {name.replace(" ", ""): ident for name, ident in _NAMES.items()}
_NAME_BY_IDENT = {ident: name for name, ident in _NAMES.items()}
# in paho's order, which is the order pack() writes them in
_ORDER = [(name.replace(" ", ""), ident) for name, ident in _NAMES.items()]
_MULTIPLE = frozenset({11, 38})
_PRIVATE = frozenset({"packetType", "types", "names", "properties"})
_RANGES = {
    "ReceiveMaximum": (1, 65535), "TopicAlias": (1, 65535), "TopicAliasMaximum": (0, 65535),
    "MaximumPacketSize": (1, 268435455), "SubscriptionIdentifier": (1, 268435455),
}
_BOOLEANS = frozenset({"RequestResponseInformation", "RequestProblemInformation", "PayloadFormatIndicator"})


class FastProperties(Properties):
    def __init__(self, packetType: int) -> None:
        d = self.__dict__
        d["packetType"] = packetType
        # shared, read-only tables: paho only ever reads them
        d["types"] = _TYPES
        d["names"] = _NAMES
        d["properties"] = _PROPERTIES

    def getIdentFromName(self, compressedName: str) -> int:
        return _IDENT_BY_COMPRESSED.get(compressedName, -1)

    def allowsMultiple(self, compressedName: str) -> bool:
        return _IDENT_BY_COMPRESSED.get(compressedName) in _MULTIPLE

    def getNameFromIdent(self, identifier: int) -> str | None:
        return _NAME_BY_IDENT.get(identifier)

    def __setattr__(self, name: str, value: Any) -> None:
        name = name.replace(" ", "")
        if name in _PRIVATE:
            self.__dict__[name] = value
            return
        ident = _IDENT_BY_COMPRESSED.get(name)
        if ident is None:
            raise MQTTException(f"Property name must be one of {_NAMES.keys()}")
        if self.packetType not in _PROPERTIES[ident][1]:
            raise MQTTException(f"Property {name} does not apply to packet type "
                                f"{PacketTypes.Names[self.packetType]}")
        if not isinstance(value, list):
            bounds = _RANGES.get(name)
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise MQTTException(f"{name} property value must be in the range {bounds[0]}-{bounds[1]}")
            if name in _BOOLEANS and value not in (0, 1):
                raise MQTTException(f"{name} property value must be 0 or 1")
        if ident in _MULTIPLE:
            if not isinstance(value, list):
                value = [value]
            if name in self.__dict__:
                value = self.__dict__[name] + value
        self.__dict__[name] = value

    def __str__(self) -> str:
        d = self.__dict__
        return "[" + ", ".join(f"{n} : {d[n]}" for n, _ in _ORDER if n in d) + "]"

    def json(self) -> dict[str, Any]:
        d = self.__dict__
        data: dict[str, Any] = {}
        for n, _ in _ORDER:
            if n in d:
                val = d[n]
                data[n] = val.hex() if n == "CorrelationData" and isinstance(val, bytes) else val
        return data

    def isEmpty(self) -> bool:
        d = self.__dict__
        return not any(n in d for n, _ in _ORDER)

    def clear(self) -> None:
        d = self.__dict__
        for n, _ in _ORDER:
            d.pop(n, None)

    def pack(self) -> bytes:
        d = self.__dict__
        parts: list[bytes] = []
        for n, ident in _ORDER:
            if n in d:
                attr_type = _PROPERTIES[ident][0]
                if ident in _MULTIPLE:
                    parts.extend(self.writeProperty(ident, attr_type, prop) for prop in d[n])
                else:
                    parts.append(self.writeProperty(ident, attr_type, d[n]))
        buffer = b"".join(parts)
        return VariableByteIntegers.encode(len(buffer)) + buffer

    def unpack(self, buffer: bytes) -> tuple[FastProperties, int]:
        if len(self.__dict__) > len(_PRIVATE):  # paho unpacks into a new object: nothing to clear
            self.clear()
        propslen, vbi_len = VariableByteIntegers.decode(buffer)
        buffer = buffer[vbi_len:]
        left = propslen
        while left > 0:
            identifier, vbi_len2 = VariableByteIntegers.decode(buffer)
            buffer = buffer[vbi_len2:]
            left -= vbi_len2
            attr_type = _PROPERTIES[identifier][0]
            value, value_len = self.readProperty(buffer, attr_type, left)
            buffer = buffer[value_len:]
            left -= value_len
            name = _NAME_BY_IDENT[identifier].replace(" ", "")
            if identifier not in _MULTIPLE and name in self.__dict__:
                raise MQTTException(f"Property '{name}' must not exist more than once")
            setattr(self, name, value)
        return self, propslen + vbi_len


class FastReasonCode(ReasonCode):
    """paho's ReasonCode without copying its table of names into every instance."""

    def __init__(self, packetType: int, aName: str = "Success", identifier: int = -1) -> None:
        self.names = ReasonCode.names  # read-only (a MappingProxyType), never written by paho
        self.packetType = packetType
        if identifier == -1:
            if packetType == PacketTypes.DISCONNECT and aName == "Success":
                aName = "Normal disconnection"
            self.set(aName)
        else:
            self.value = identifier
            self.getName()  # check it's good, as paho does


def install() -> None:
    """Make paho build the fast classes for the packets it sends and receives."""
    _paho_client.Properties = FastProperties  # type: ignore[misc]
    _paho_packet.Properties = FastProperties  # type: ignore[misc]
    _paho_client.ReasonCode = FastReasonCode  # type: ignore[misc]
    _paho_packet.ReasonCode = FastReasonCode  # type: ignore[misc]


# ---------------------------------------------------------------- socket I/O

READ_CHUNK = 64 * 1024
WRITE_CHUNK = 64 * 1024
_PUBLISH = int(_paho_client.PUBLISH)
_DISCONNECT = int(_paho_client.DISCONNECT)
_PUBACK = int(_paho_client.PUBACK)


class BufferedSocket:
    """A plain TCP socket whose recv() reads what the socket has and hands it out as asked.

    paho reads a packet in small pieces; this serves them from one read. pending() is the
    bytes read but not yet handed out: both paho's own loop and aiomqtt's reader keep reading
    while it is not zero (as for an SSL socket's buffer), so nothing waits in it for a
    readiness event that will not come. Everything else is the socket's own.

    After a read that got less than it asked for, the socket had nothing more: the next read
    says so (BlockingIOError) without asking the kernel again, which ends the reader's turn. The
    event loop's readiness is level-triggered, so anything that arrived since is read next turn."""

    __slots__ = ("_buf", "_drained", "_pos", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0
        self._drained = False

    def recv(self, bufsize: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            if self._drained:
                self._drained = False
                raise BlockingIOError()
            want = max(bufsize, READ_CHUNK)
            buf = self._sock.recv(want)
            self._drained = 0 < len(buf) < want
            if len(buf) <= bufsize:  # also the end of the stream (b"")
                self._buf, self._pos = b"", 0
                return buf
            self._buf, pos = buf, 0
        end = pos + bufsize
        self._pos = end
        return buf[pos:end]

    def pending(self) -> int:
        return len(self._buf) - self._pos

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _new_in_packet() -> dict[str, Any]:
    return {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}


def _whole_packet_read(client: _paho_client.Client, paho_read: Any) -> int:
    """paho's Client._packet_read for a packet already whole in the BufferedSocket: taken in one
    piece instead of byte by byte. Anything else (a packet begun or not yet all read, an empty
    buffer, a malformed length) goes through paho's own code, which reads from the same buffer."""
    sock = client._sock
    if type(sock) is not BufferedSocket or client._in_packet["command"] != 0:
        return paho_read()
    buf, start = sock._buf, sock._pos
    end = len(buf)
    i = start + 1
    length = 0
    shift = 0
    while True:
        if i >= end or shift > 21:
            return paho_read()
        byte = buf[i]
        i += 1
        length += (byte & 127) << shift
        shift += 7
        if not byte & 128:
            break
    if i + length > end:
        return paho_read()
    sock._pos = i + length
    if buf[start] == _PUBACK and length == 2:
        # The usual acknowledgement (success, no properties; several per command): what paho's
        # _handle_pubackcomp does, without decoding it through the general path.
        mid = buf[i] << 8 | buf[i + 1]
        with client._msgtime_mutex:
            client._last_bytes_received = _paho_client.time_func()
        client._easy_log(_paho_client.MQTT_LOG_DEBUG, "Received %s (Mid: %d)", "PUBACK", mid)
        with client._out_message_mutex:
            if mid in client._out_messages:
                return client._do_on_publish(mid, FastReasonCode(PacketTypes.PUBACK),
                                             FastProperties(PacketTypes.PUBACK))
        return _paho_client.MQTTErrorCode.MQTT_ERR_SUCCESS
    client._in_packet = {"command": buf[start], "have_remaining": 1, "remaining_count": list(buf[start + 1:i]),
                         "remaining_mult": 1 << shift, "remaining_length": length,
                         "packet": bytearray(buf[i:i + length]), "to_process": 0, "pos": 0}
    with client._msgtime_mutex:
        client._last_bytes_received = _paho_client.time_func()
    try:
        rc = client._packet_handle()
    except _paho_client.MalformedPacket as exc:
        client._easy_log(_paho_client.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
        rc = _paho_client.MQTTErrorCode.MQTT_ERR_PROTOCOL
    client._in_packet = _new_in_packet()
    with client._msgtime_mutex:
        client._last_bytes_received = _paho_client.time_func()
    return rc


def _coalescing_packet_write(client: _paho_client.Client, paho_write: Any) -> int:
    """paho's Client._packet_write, with the queued packets sent together: one send() for as
    many as fit in WRITE_CHUNK. A packet paho must act on once it is written (a QoS 0 PUBLISH,
    a DISCONNECT) goes through paho's own code."""
    out = client._out_packet
    while out:
        batch: list[Any] = []
        size = 0
        for pkt in out:
            command = pkt["command"] & 0xF0
            if command == _DISCONNECT or (command == _PUBLISH and pkt["qos"] == 0):
                break
            batch.append(pkt)
            size += pkt["to_process"]
            if size >= WRITE_CHUNK:
                break
        if not batch:
            return paho_write()
        data = b"".join(p["packet"][p["pos"]:] if p["pos"] else p["packet"] for p in batch)
        try:
            sent = client._sock_send(data)
        except (AttributeError, ValueError):
            return _paho_client.MQTTErrorCode.MQTT_ERR_SUCCESS
        except BlockingIOError:
            return _paho_client.MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:
            client._easy_log(_paho_client.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return _paho_client.MQTTErrorCode.MQTT_ERR_CONN_LOST
        if sent <= 0:
            with client._msgtime_mutex:
                client._last_msg_out = _paho_client.time_func()
            break
        for pkt in batch:
            if sent < pkt["to_process"]:
                pkt["pos"] += sent
                pkt["to_process"] -= sent
                break
            sent -= pkt["to_process"]
            pkt["pos"] += pkt["to_process"]
            pkt["to_process"] = 0
            out.popleft()
    return _paho_client.MQTTErrorCode.MQTT_ERR_SUCCESS


def fast_socket_io(client: aiomqtt.Client, socket_options: Iterable[tuple[int, int, int]] = ()) -> None:
    """Read and write this client's plain TCP connections in large pieces (see the module's
    docstring), and write what is queued at the end of the event loop's turn. TLS and WebSocket
    connections are read and written by paho as before.

    aiomqtt waits for the socket to be writable before each write, announced through the loop's
    self-pipe: four system calls and a turn of the loop, for a socket that is nearly always
    writable. Here, a write queued on the loop's thread is tried at the end of the turn, and the
    socket is watched only when it is full. `socket_options` are set on each new socket here:
    aiomqtt sets its own only on a socket.socket, which the wrapper is not."""
    paho = client._client
    loop = client._loop
    # aiomqtt makes its client on the loop's thread; get_ident() costs no system call, unlike
    # asyncio's get_running_loop() (a getpid() each time on Python 3.11)
    loop_thread = threading.get_ident()
    create = paho._create_socket
    paho_write = paho._packet_write
    paho_read = paho._packet_read
    options = tuple(socket_options)
    watched: list[int] = []  # the descriptor watched for writability, if any

    def create_socket() -> Any:
        sock = create()
        if type(sock) is not socket.socket or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return sock
        for option in options:
            sock.setsockopt(*option)
        return BufferedSocket(sock)

    def write() -> None:
        try:
            paho.loop_write()
        except Exception as exc:  # as aiomqtt's own writer: the connection is broken
            if not client._disconnected.done():
                client._disconnected.set_exception(exc)
            return
        sock = paho._sock
        # paho keeps the registration while packets wait: the socket is full, wait until it is not
        if paho._registered_write and sock is not None and not watched:
            fd = sock.fileno()
            loop.add_writer(fd, write)
            watched.append(fd)

    def register_write(_client: Any, _userdata: Any, _sock: Any) -> None:
        if threading.get_ident() == loop_thread:
            loop.call_soon(write)
        else:  # paho's connect() runs in an executor thread
            loop.call_soon_threadsafe(write)

    def unregister_write(_client: Any, _userdata: Any, _sock: Any) -> None:
        while watched:
            loop.remove_writer(watched.pop())

    paho._create_socket = create_socket  # type: ignore[method-assign]
    paho._packet_write = lambda: _coalescing_packet_write(paho, paho_write)  # type: ignore[method-assign]
    paho._packet_read = lambda: _whole_packet_read(paho, paho_read)  # type: ignore[method-assign]
    paho.on_socket_register_write = register_write
    paho.on_socket_unregister_write = unregister_write
