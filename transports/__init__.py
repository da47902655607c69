"""Transports: one module per way of moving messages, one registry line each."""

from __future__ import annotations

from importlib import import_module

from transports.base import Transport

# name -> "module:Class"; modules are imported late so that a transport's
# optional library is only needed when that transport is used.
REGISTRY: dict[str, str] = {
    "tcp": "transports.tcp:TcpTransport",
    "uds": "transports.uds:UdsTransport",
    "zeromq": "transports.zeromq:ZeromqTransport",
    "http": "transports.http_api:HttpTransport",
    "file": "transports.shared_file:SharedFileTransport",
    "postgres": "transports.pg_queue:PgQueueTransport",
    "mqtt": "transports.mqtt_pubsub:MqttTransport",
}


def get(name: str) -> type[Transport]:
    """The transport class registered as ``name`` (KeyError if there is none)."""
    module_name, _, class_name = REGISTRY[name].partition(":")
    cls: type[Transport] = getattr(import_module(module_name), class_name)
    return cls


def names() -> list[str]:
    return list(REGISTRY)
