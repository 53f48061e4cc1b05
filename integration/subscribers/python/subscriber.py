"""Subscriber of senfenico-bridge events on NATS JetStream and/or Kafka.

Validates each message against the JSON Schemas in ../../../schemas, drops
duplicates by CloudEvents id, and prints one line per new event:

    <broker> <subject> <ce-id> <reference> <valid|invalid|dead-letter:REASON>[ trace=<trace id>]

See ../README.md for the flags, the environment and the line format, which the
Go and Node subscribers share. Run it with the venv that setup.sh builds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import nats
import nats.errors
from confluent_kafka import Consumer, KafkaException
from jsonschema import Draft202012Validator
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from referencing import Registry, Resource

DEFAULT_SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
FAMILIES = ("checkout", "charge", "settlement", "transfer")
# A W3C traceparent: <version>-<trace id>-<span id>-<flags>, lower-case hex.
TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


@dataclass
class Delivery:
    broker: str
    subject: str
    ce_id: str
    ce_type: str
    # The ce-deadletterreason header: the bridge could not route the event,
    # and body is the request as Senfenico sent it.
    dead_letter: str
    body: bytes
    # Confirms the message to its broker once its line is printed, so a crash
    # in between means a redelivery (absorbed by the dedup), never a loss.
    ack: Callable[[], Awaitable[None]]
    # The W3C traceparent header, "" without one.
    trace_parent: str = ""


class Checker:
    """Validates published bodies the way the Go schemas package does."""

    def __init__(self, schema_dir: Path):
        docs = {}
        for path in sorted(schema_dir.glob("*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(doc)
            docs[path.stem] = doc
        # The registry resolves any $ref between the files by their $id, so a
        # schema that refers to another one needs no network access.
        registry = Registry().with_resources(
            (doc["$id"], Resource.from_contents(doc)) for doc in docs.values()
        )
        self.envelope = Draft202012Validator(docs["envelope"], registry=registry)
        self.families = {
            name: Draft202012Validator(docs[name], registry=registry)
            for name in FAMILIES
            if name in docs
        }

    def valid(self, body: bytes, ce_type: str) -> bool:
        doc = decode(body)
        if doc is None or not self.envelope.is_valid(doc):
            return False
        event = doc["event"]
        if ce_type and event != ce_type:
            return False
        family = self.families.get((ce_type or event).split(".", 1)[0])
        return family is None or family.is_valid(doc["data"])


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def decode(body: bytes):
    """Parses standard JSON only (no NaN or Infinity), or returns None."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except ValueError:
        return None


def reference(body: bytes) -> str:
    doc = decode(body)
    data = doc.get("data") if isinstance(doc, dict) else None
    ref = data.get("reference") if isinstance(data, dict) else None
    return ref if isinstance(ref, str) else ""


def token(value: str) -> str:
    """Makes a value safe as one field of the line: printable ASCII, no spaces."""
    if not value or len(value) > 200 or any(not "!" <= c <= "~" for c in value):
        return "-"
    return value


def trace_suffix(trace_parent: str) -> str:
    """What ends a line: " trace=<trace id>" for a valid traceparent (version
    not ff, ids not all zeros), nothing otherwise."""
    m = TRACEPARENT.fullmatch(trace_parent)
    if m is None or m[1] == "ff" or m[2].strip("0") == "" or m[3].strip("0") == "":
        return ""
    return " trace=" + m[2]


class Seen:
    """Remembers the last `size` ids, so memory stays bounded."""

    def __init__(self, size: int):
        self.size = size
        self.ids: collections.OrderedDict[str, None] = collections.OrderedDict()

    def add(self, ce_id: str) -> bool:
        if ce_id in self.ids:
            return False
        self.ids[ce_id] = None
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


def split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nats", default=env("NATS_URL", ""), help="NATS URL (env NATS_URL)")
    p.add_argument("--stream", default=env("NATS_STREAM", "SENFENICO"), help="JetStream stream")
    p.add_argument(
        "--subjects",
        default=env("NATS_SUBJECTS", ""),
        help="comma-separated filter subjects; empty reads every subject of the stream",
    )
    p.add_argument("--durable", default=env("NATS_DURABLE", "subscriber-python"))
    p.add_argument("--kafka", default=env("KAFKA_BROKERS", ""), help="Kafka bootstrap addresses")
    p.add_argument("--topics", default=env("KAFKA_TOPICS", ""), help="comma-separated topics")
    p.add_argument("--group", default=env("KAFKA_GROUP", "subscriber-python"))
    p.add_argument("--count", type=int, default=0, help="exit after N new events")
    p.add_argument("--schemas", default=env("SCHEMAS_DIR", str(DEFAULT_SCHEMAS)))
    args = p.parse_args(argv)
    args.subjects, args.topics = split(args.subjects), split(args.topics)
    if not args.nats and not args.kafka:
        p.error("neither --nats nor --kafka is set")
    if args.kafka and not args.topics:
        p.error("--kafka needs --topics")
    if args.count < 0:
        p.error("--count must not be negative")
    return args


def verdict(d: Delivery, checker: Checker) -> str:
    """The last field of a line: a dead letter is marked with its reason
    instead of being checked against schemas it was refused by."""
    if d.dead_letter:
        return "dead-letter:" + token(d.dead_letter)
    return "valid" if d.ce_id and checker.valid(d.body, d.ce_type) else "invalid"


async def start_nats(args, queue: asyncio.Queue):
    """Reads through a durable pull consumer with explicit acks, so a restarted
    subscriber resumes after the last event it printed."""
    connected = False

    async def on_error(err: Exception) -> None:
        # nats-py retries a failed first connect for two minutes, with a
        # traceback each time. The Go and Node clients give up at once, and
        # so does this one (an error raised here ends connect()): a wrong
        # reader URL or a stopped bridge is reported, not waited out. Once
        # connected, the client reconnects by itself; this logs why.
        if not connected:
            raise err
        print(f"subscriber: nats: {err!r}", file=sys.stderr, flush=True)

    # The user and password of the URL (nats://user:password@host:port, as
    # in the embedded server's DATA_DIR/readers/<name>.url) log in.
    nc = await nats.connect(args.nats, name="senfenico-subscriber-python", error_cb=on_error)
    connected = True
    try:
        js = nc.jetstream()
        await js.add_consumer(
            args.stream,
            ConsumerConfig(
                durable_name=args.durable,
                filter_subjects=args.subjects or None,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
            ),
        )
        sub = await js.pull_subscribe_bind(durable=args.durable, stream=args.stream)
    except BaseException:
        await nc.close()
        raise

    async def pump():
        try:
            while True:
                try:
                    msgs = await sub.fetch(16, timeout=1)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):
                    continue
                for m in msgs:
                    headers = m.headers or {}
                    await queue.put(
                        Delivery("nats", m.subject, headers.get("ce-id", ""),
                                 headers.get("ce-type", ""),
                                 headers.get("ce-deadletterreason", ""), m.data, m.ack,
                                 headers.get("traceparent", ""))
                    )
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure ends the subscriber
            await queue.put(RuntimeError(f"nats: {err!r}"))

    return nc, sub, asyncio.create_task(pump())


def kafka_loop(args, loop, queue: asyncio.Queue, stop: threading.Event):
    """Polls in its own thread (confluent-kafka blocks) and commits each record
    after the main loop printed it."""
    consumer = Consumer({
        "bootstrap.servers": args.kafka,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    try:
        # The bridge creates each topic with its first event, and librdkafka
        # notices a subscribed topic that appears later only at its next
        # metadata refresh (five minutes by default): wait for them first,
        # as the Go and Node subscribers do.
        said = False
        while not stop.is_set():
            present = consumer.list_topics(timeout=10).topics
            missing = [t for t in args.topics if t not in present or present[t].error is not None]
            if not missing:
                break
            if not said:
                print(f"subscriber: waiting for Kafka topics {','.join(missing)} "
                      "(the bridge creates each with its first event)", file=sys.stderr, flush=True)
                said = True
            stop.wait(1)
        consumer.subscribe(args.topics)
        while not stop.is_set():
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().fatal():
                    asyncio.run_coroutine_threadsafe(
                        queue.put(RuntimeError(f"kafka: {m.error()}")), loop)
                    return
                # librdkafka retries the others (broker down, topic not yet
                # created) by itself.
                print(f"subscriber: kafka: {m.error()}", file=sys.stderr, flush=True)
                continue
            headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (m.headers() or [])}
            printed = threading.Event()

            async def ack(printed=printed):
                printed.set()

            asyncio.run_coroutine_threadsafe(
                queue.put(Delivery("kafka", m.topic(), headers.get("ce_id", ""),
                                   headers.get("ce_type", ""),
                                   headers.get("ce_deadletterreason", ""), m.value() or b"", ack,
                                   headers.get("traceparent", ""))),
                loop,
            )
            while not printed.wait(0.2):
                if stop.is_set():
                    return
            consumer.commit(message=m, asynchronous=False)
    except KafkaException as err:
        asyncio.run_coroutine_threadsafe(queue.put(RuntimeError(f"kafka: {err}")), loop)
    finally:
        # close() leaves the group at once, so a restart gets its partitions
        # without waiting for the session to time out.
        consumer.close()


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    checker = Checker(Path(args.schemas))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, queue.put_nowait, None)

    nc = sub = pump = thread = None
    stop = threading.Event()
    try:
        if args.nats:
            try:
                nc, sub, pump = await start_nats(args, queue)
            except Exception as err:  # noqa: BLE001 - reported as one line, like the Go one
                print(f"subscriber: subscribe to NATS: {err!r}", file=sys.stderr, flush=True)
                return 1
        if args.kafka:
            thread = threading.Thread(target=kafka_loop, args=(args, loop, queue, stop), daemon=True)
            thread.start()
        print("subscriber ready", file=sys.stderr, flush=True)

        seen, printed = Seen(100_000), 0
        while True:
            d = await queue.get()
            if d is None:
                return 0
            if isinstance(d, Exception):
                print(f"subscriber: {d}", file=sys.stderr, flush=True)
                return 1
            if not d.ce_id or seen.add(d.ce_id):
                print(d.broker, token(d.subject), token(d.ce_id), token(reference(d.body)),
                      verdict(d, checker) + trace_suffix(d.trace_parent), flush=True)
                printed += 1
            await d.ack()
            if args.count and printed >= args.count:
                return 0
    finally:
        stop.set()
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        if nc is not None:
            # Not drain: it waits for the pull request the pump left open,
            # which the server never answers (30 s, then DrainTimeoutError).
            # Unsubscribing stops new deliveries, the flush gets the acks out.
            try:
                if sub is not None:
                    await sub.unsubscribe()
                await nc.flush(timeout=2)
            except Exception as err:  # noqa: BLE001 - closing anyway
                print(f"subscriber: nats close: {err!r}", file=sys.stderr, flush=True)
            await nc.close()
        if thread is not None:
            await asyncio.to_thread(thread.join)


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(sys.argv[1:])))
    except KeyboardInterrupt:
        # Ctrl-C before the handlers are installed (while connecting) is
        # still a request to stop, not a crash worth a traceback.
        sys.exit(0)
