"""A DNS server on 127.0.0.1 (UDP, dnspython) answering from a JSON zone, so no real name is
ever looked up.

Zone: ``{"records": {"name.": {"MX": ["10 mx.name."], "A": ["127.0.0.1"]}},
"timeout": ["name."], "servfail": ["name."]}``. A name that is not listed is NXDOMAIN; a
listed name without the asked type answers NOERROR with no records; a ``timeout`` name is
never answered. Every query is recorded as ``{"name", "type"}``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from scripted import Record, Script, ready


def answer(script: Script, record: Record, wire: bytes) -> bytes | None:
    query = dns.message.from_wire(wire)
    question = query.question[0]
    name = question.name.to_text().lower()
    kind = dns.rdatatype.to_text(question.rdtype)
    record.write(name=name, type=kind)
    zone = script.refresh()
    if name in zone.get("timeout", []):
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if name in zone.get("servfail", []):
        response.set_rcode(dns.rcode.SERVFAIL)
        return response.to_wire()
    records = zone.get("records", {})
    if name not in records:
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()
    values = records[name].get(kind, [])
    if values:
        response.answer.append(dns.rrset.from_text_list(name, 60, "IN", kind, values))
    return response.to_wire()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--script", required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    script, record = Script(args.script), Record(args.record)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ready(sock.getsockname()[1])
    while True:
        try:
            wire, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
        reply = answer(script, record, wire)
        if reply is not None:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
