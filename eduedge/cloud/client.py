"""The cloud's MQTT clients (receivers and the command sender): MQTT 5, TLS and credentials as configured."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from eduedge.agent import contract
from eduedge.cloud.config import CloudMqtt


def subscription(cfg: CloudMqtt) -> str:
    """The topic filter a receiver subscribes to.

    >>> subscription(CloudMqtt(broker="b")), subscription(CloudMqtt(broker="b", group=""))
    ('$share/eduedge-cloud/edu/v1/#', 'edu/v1/#')
    """
    base = f"{contract.TOPIC_ROOT}/#"
    return f"$share/{cfg.group}/{base}" if cfg.group else base


def mqtt_client(cfg: CloudMqtt, client_id: str, persistent: bool, manual_ack: bool = False) -> mqtt.Client:
    """A paho client for the cloud's side, TLS and credentials as configured (not yet connected)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    if cfg.username is not None:
        c.username_pw_set(cfg.username, cfg.password.read("mqtt.password") if cfg.password else None)
    if cfg.tls is not None:
        t = cfg.tls
        c.tls_set(ca_certs=str(t.ca_file) if t.ca_file else None, certfile=str(t.cert_file) if t.cert_file else None,
                  keyfile=str(t.key_file) if t.key_file else None, cert_reqs=ssl.CERT_REQUIRED,
                  tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.reconnect_delay_set(1, 30)
    c.max_inflight_messages_set(100)
    c.user_data_set({"persistent": persistent})
    return c


def connect_properties(cfg: CloudMqtt, persistent: bool) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = int(cfg.session_expiry) if persistent else 0
    props.ReceiveMaximum = cfg.receive_maximum
    return props
