"""The city's shipped broker configuration (eduedge/config/city-broker/) with the real mosquitto: TLS listeners, each
school's identity from its client certificate, the ACL. School A's certificate can publish only on A's topics and
read only A's commands; without a certificate nothing connects; the receiver's and operator's accounts do their
jobs and no more. Only the paths and ports of the shipped files are changed for the test (loopback, free ports)."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from eduedge.simulator.broker import MOSQUITTO, Broker, free_tcp_port, make_pki

pytestmark = pytest.mark.integration
SHIPPED = Path(__file__).resolve().parents[1] / "eduedge" / "config" / "city-broker"
A, B = "yinchuan-primary-0001", "yinchuan-secondary-0002"
PASSWORDS = {"eduedge-receiver": "receiver-secret-123", "eduedge-operator": "operator-secret-456"}


@pytest.fixture(scope="module")
def city_broker(tmp_path_factory):
    work = tmp_path_factory.mktemp("city-broker")
    pki = make_pki(work / "pki", (A, B))
    etc = work / "etc"
    etc.mkdir()
    (etc / "schools-ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (etc / "server.crt").write_bytes(pki.server_cert.read_bytes())
    (etc / "server.key").write_bytes(pki.server_key.read_bytes())
    (etc / "acl").write_text((SHIPPED / "acl").read_text())
    pw = etc / "passwords"
    for i, (user, secret) in enumerate(PASSWORDS.items()):
        subprocess.run(["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(pw), user, secret], check=True)
    schools_port, services_port = free_tcp_port(), free_tcp_port()
    conf = (SHIPPED / "mosquitto.conf").read_text().replace("/etc/mosquitto/eduedge/", f"{etc}/")
    conf = conf.replace("/var/lib/mosquitto/", f"{work}/")
    conf = re.sub(r"^listener 8883$", f"listener {schools_port} 127.0.0.1", conf, flags=re.M)
    conf = re.sub(r"^listener 8884$", f"listener {services_port} 127.0.0.1", conf, flags=re.M)
    assert f"listener {schools_port}" in conf and f"listener {services_port}" in conf
    extra = ["user root"] if os.geteuid() == 0 else []
    (work / "mosquitto.conf").write_text("\n".join([*extra, conf, f"log_dest file {work}/mosquitto.log",
                                                    "log_type all"]) + "\n")
    broker = Broker("127.0.0.1", schools_port, work, tls_port=services_port, pki=pki, own_workdir=False)
    broker.start()
    assert Path(MOSQUITTO).exists()
    yield broker
    broker.close()


class Peer:
    """One MQTT v5 client over TLS, recording what it receives and the reason codes of its acks."""

    def __init__(self, broker: Broker, name: str, cert: tuple[Path, Path] | None = None, user: str | None = None,
                 services: bool = False):
        assert broker.pki is not None
        self.got: list[tuple[str, bytes]] = []
        self.acks: dict[int, int] = {}
        self.granted: list[int] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.subscribed = threading.Event()
        self.acked = threading.Condition(self.lock)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(broker.pki.ca_cert), certfile=str(cert[0]) if cert else None,
                  keyfile=str(cert[1]) if cert else None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if user:
            c.username_pw_set(user, PASSWORDS[user])
        c.on_connect = lambda cl, u, f, rc, p: self.ready.set() if not rc.is_failure else None
        c.on_message = lambda cl, u, m: self.got.append((m.topic, m.payload))
        c.on_subscribe = self._subscribed
        c.on_publish = self._published
        self.client = c
        c.connect("127.0.0.1", broker.tls_port if services else broker.port, keepalive=10)
        c.loop_start()

    def _subscribed(self, client, userdata, mid, codes, props) -> None:
        self.granted = [int(getattr(x, "value", x)) for x in codes]
        self.subscribed.set()

    def _published(self, client, userdata, mid, rc, props) -> None:
        with self.acked:
            self.acks[mid] = int(getattr(rc, "value", rc))
            self.acked.notify_all()

    def publish(self, topic: str, payload: bytes = b"{}") -> int:
        """The PUBACK's reason code (0 accepted, 135 not authorised)."""
        mid = self.client.publish(topic, payload, qos=1).mid
        with self.acked:
            assert self.acked.wait_for(lambda: mid in self.acks, 10), topic
            return self.acks[mid]

    def subscribe(self, topic: str) -> int:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(10)
        return self.granted[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_a_school_writes_only_its_own_topics_and_reads_only_its_own_commands(city_broker):
    pki = city_broker.pki
    rx = Peer(city_broker, "rx", user="eduedge-receiver", services=True)
    a = Peer(city_broker, "a-gw", cert=pki.clients[A])
    b = Peer(city_broker, "b-gw", cert=pki.clients[B])
    op = Peer(city_broker, "operator", user="eduedge-operator", services=True)
    try:
        for p in (rx, a, b, op):
            assert p.ready.wait(10), "a peer could not connect"
        assert rx.subscribe("edu/v1/yinchuan/#") == 1
        assert a.subscribe(f"edu/v1/yinchuan/{A}/cmd/#") == 1
        assert b.subscribe(f"edu/v1/yinchuan/{B}/cmd/#") == 1
        # A asks to listen to B's commands and to the whole city: mosquitto grants the subscriptions and its ACL
        # then delivers none of it (checked below: A receives nothing at all)
        a.subscribe(f"edu/v1/yinchuan/{B}/cmd/#")
        a.subscribe("edu/v1/yinchuan/#")

        assert a.publish(f"edu/v1/yinchuan/{A}/metrics", b"from A") == 0
        assert a.publish(f"edu/v1/yinchuan/{B}/metrics", b"A posing as B") == 135
        assert a.publish(f"edu/v1/yinchuan/{B}/birth", b"A posing as B") == 135
        assert a.publish(f"edu/v1/othercity/{A}/metrics", b"A in another city") == 135
        assert a.publish(f"edu/v1/yinchuan/{A}/cmd/rebirth", b"A commanding itself") == 135
        assert wait_until(lambda: (f"edu/v1/yinchuan/{A}/metrics", b"from A") in rx.got)
        time.sleep(0.5)
        assert [t for t, _ in rx.got] == [f"edu/v1/yinchuan/{A}/metrics"]   # nothing posing as B arrived

        assert op.publish(f"edu/v1/yinchuan/{B}/cmd/rebirth", b"to B") == 0
        assert op.publish(f"edu/v1/yinchuan/{B}/metrics", b"operator posing as B") == 135
        assert wait_until(lambda: (f"edu/v1/yinchuan/{B}/cmd/rebirth", b"to B") in b.got)
        time.sleep(0.5)
        assert a.got == []                          # A never saw B's command, nor B's or its own metrics
        assert b.publish(f"edu/v1/yinchuan/{B}/cmd-result", b"done") == 0
        assert wait_until(lambda: any(t.endswith(f"{B}/cmd-result") for t, _ in rx.got))
    finally:
        for p in (rx, a, b, op):
            p.close()


def test_nothing_connects_without_a_certificate_or_a_password(city_broker):
    for kwargs in ({}, {"services": True}):
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anon", protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(city_broker.pki.ca_cert), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        refused = threading.Event()
        c.on_connect = lambda cl, u, f, rc, props, r=refused: r.set() if rc.is_failure else None
        port = city_broker.tls_port if kwargs else city_broker.port
        try:
            c.connect("127.0.0.1", port, keepalive=5)
            c.loop_start()
            # the schools' listener ends the TLS handshake; the services' listener refuses the CONNECT
            assert refused.wait(5) or not c.is_connected()
            time.sleep(0.3)
            assert not c.is_connected()
        except (ssl.SSLError, OSError):
            pass                                           # refused in the handshake: what we want
        finally:
            c.loop_stop()
