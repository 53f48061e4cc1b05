// Subscriber of senfenico-bridge events on NATS JetStream and/or Kafka.
//
// Validates each message against the JSON Schemas in ../../../schemas, drops
// duplicates by CloudEvents id, and prints one line per new event:
//
//     <broker> <subject> <ce-id> <reference> <valid|invalid|dead-letter:REASON>[ trace=<trace id>]
//
// See ../README.md for the flags, the environment and the line format, which
// the Go and Python subscribers share.

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { connect } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, JetStreamApiError, jetstream, jetstreamManager } from "@nats-io/jetstream";
import Ajv2020Module from "ajv/dist/2020.js";
import { Kafka, logLevel } from "kafkajs";

const Ajv2020 = Ajv2020Module.default ?? Ajv2020Module;
const here = dirname(fileURLToPath(import.meta.url));
const FAMILIES = ["checkout", "charge", "settlement", "transfer"];
// nats-server's JSConsumerAlreadyExists, which the library names no constant for.
const CONSUMER_ALREADY_EXISTS = 10148;

function split(value) {
  return (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}

function config(argv) {
  const env = process.env;
  const { values } = parseArgs({
    args: argv,
    options: {
      nats: { type: "string", default: env.NATS_URL ?? "" },
      stream: { type: "string", default: env.NATS_STREAM || "SENFENICO" },
      // Empty reads every subject of the stream: new families and dead letters too.
      subjects: { type: "string", default: env.NATS_SUBJECTS ?? "" },
      durable: { type: "string", default: env.NATS_DURABLE || "subscriber-node" },
      kafka: { type: "string", default: env.KAFKA_BROKERS ?? "" },
      topics: { type: "string", default: env.KAFKA_TOPICS ?? "" },
      group: { type: "string", default: env.KAFKA_GROUP || "subscriber-node" },
      count: { type: "string", default: "0" },
      schemas: { type: "string", default: env.SCHEMAS_DIR || resolve(here, "../../../schemas") },
    },
  });
  const cfg = { ...values, subjects: split(values.subjects), topics: split(values.topics), kafka: split(values.kafka) };
  cfg.count = Number(values.count);
  if (!cfg.nats && cfg.kafka.length === 0) throw new Error("neither --nats nor --kafka is set");
  if (cfg.kafka.length > 0 && cfg.topics.length === 0) throw new Error("--kafka needs --topics");
  if (!Number.isInteger(cfg.count) || cfg.count < 0) throw new Error("--count must be a non-negative integer");
  return cfg;
}

// natsOptions turns --nats into connect() options. @nats-io/transport-node
// ignores the user and password of a server URL (worse, it reads the first
// digits after "user:" as the port), and the bridge's embedded server
// refuses clients without them, so they are taken out of the URL and passed
// as options: nats://user:password@host:port logs in as user, and
// nats://token@host:port with a token, as the Go and Python clients read
// them.
function natsOptions(value) {
  const opts = { servers: [] };
  for (const server of split(value)) {
    const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(server)?.[0] ?? "";
    const at = server.lastIndexOf("@");
    if (at < scheme.length) {
      opts.servers.push(server);
      continue;
    }
    opts.servers.push(scheme + server.slice(at + 1));
    const userinfo = server.slice(scheme.length, at);
    const colon = userinfo.indexOf(":");
    if (colon === -1) {
      opts.token = decodeURIComponent(userinfo);
    } else {
      opts.user = decodeURIComponent(userinfo.slice(0, colon));
      opts.pass = decodeURIComponent(userinfo.slice(colon + 1));
    }
  }
  return opts;
}

// checker compiles the schemas once; every file is added by its $id, so a
// $ref from one schema to another resolves without network access.
function checker(dir) {
  const ajv = new Ajv2020({ allowUnionTypes: true });
  const ids = {};
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    const doc = JSON.parse(readFileSync(join(dir, file), "utf8"));
    ajv.addSchema(doc);
    ids[file.slice(0, -".json".length)] = doc.$id;
  }
  const envelope = ajv.getSchema(ids.envelope);
  const families = Object.fromEntries(FAMILIES.filter((f) => ids[f]).map((f) => [f, ajv.getSchema(ids[f])]));
  return (body, ceType) => {
    const doc = decode(body);
    if (doc === undefined || !envelope(doc)) return false;
    if (ceType && doc.event !== ceType) return false;
    const family = families[(ceType || doc.event).split(".")[0]];
    return family === undefined || family(doc.data);
  };
}

function decode(body) {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    return undefined;
  }
}

function reference(body) {
  const ref = decode(body)?.data?.reference;
  return typeof ref === "string" ? ref : "";
}

// token makes a value safe as one field of the line: printable ASCII, no spaces.
function token(value) {
  return value && value.length <= 200 && /^[!-~]+$/.test(value) ? value : "-";
}

// traceSuffix is what ends a line: " trace=<trace id>" for a valid W3C
// traceparent (<version>-<trace id>-<span id>-<flags>, lower-case hex,
// version not ff, ids not all zeros), nothing otherwise.
function traceSuffix(traceParent) {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(traceParent ?? "");
  if (!m || m[1] === "ff" || /^0+$/.test(m[2]) || /^0+$/.test(m[3])) return "";
  return ` trace=${m[2]}`;
}

// Seen remembers the last `size` ids (a Map keeps insertion order), so memory
// stays bounded.
class Seen {
  constructor(size) {
    this.size = size;
    this.ids = new Map();
  }
  add(id) {
    if (this.ids.has(id)) return false;
    this.ids.set(id, true);
    if (this.ids.size > this.size) this.ids.delete(this.ids.keys().next().value);
    return true;
  }
}

// kafkajs logs to stdout by default, which is reserved for event lines.
const stderrLogs = () => ({ level, log }) => {
  process.stderr.write(`kafkajs ${logLevel[level] ?? level}: ${log.message}\n`);
};

async function main() {
  let cfg;
  try {
    cfg = config(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`subscriber: ${err.message}\n`);
    return 2;
  }
  const valid = checker(cfg.schemas);
  const seen = new Seen(100_000);
  let printed = 0;
  let finish;
  const finished = new Promise((res) => (finish = res));
  process.on("SIGTERM", () => finish(0));
  process.on("SIGINT", () => finish(0));

  // handle prints and dedups synchronously, so deliveries from both brokers
  // cannot interleave between the check and the print. The ack comes after
  // the line, so a crash in between means a redelivery, never a loss.
  // A dead letter is marked with its reason instead of being checked
  // against schemas it was refused by.
  const verdict = (d) => {
    if (d.deadLetter) return `dead-letter:${token(d.deadLetter)}`;
    return d.id && valid(d.body, d.type) ? "valid" : "invalid";
  };
  async function handle(d) {
    if (!d.id || seen.add(d.id)) {
      process.stdout.write(`${d.broker} ${token(d.subject)} ${token(d.id)} ${token(reference(d.body))} ${verdict(d)}${traceSuffix(d.traceParent)}\n`);
      printed++;
    }
    await d.ack();
    if (cfg.count > 0 && printed >= cfg.count) finish(0);
  }

  const closers = [];
  try {
    if (cfg.nats) {
      // A durable consumer with explicit acks: a restarted subscriber resumes
      // after the last event it printed.
      const nc = await connect({ ...natsOptions(cfg.nats), name: "senfenico-subscriber-node" });
      closers.push(() => nc.drain());
      const jsm = await jetstreamManager(nc);
      // No filter at all reads the whole stream (undefined fields are left
      // out of the request, so an update also drops an older filter).
      const filter = cfg.subjects.length > 0 ? cfg.subjects : undefined;
      try {
        await jsm.consumers.add(cfg.stream, {
          durable_name: cfg.durable,
          filter_subjects: filter,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
        });
      } catch (err) {
        // add only creates; a durable left by an earlier run (perhaps with
        // other subjects) is updated to this run's filter, as the Go and
        // Python subscribers do.
        if (!(err instanceof JetStreamApiError) || err.code !== CONSUMER_ALREADY_EXISTS) throw err;
        await jsm.consumers.update(cfg.stream, cfg.durable, { filter_subjects: filter, filter_subject: undefined });
      }
      const consumer = await jetstream(nc).consumers.get(cfg.stream, cfg.durable);
      const messages = await consumer.consume();
      closers.push(() => messages.stop());
      (async () => {
        for await (const m of messages) {
          await handle({
            broker: "nats", subject: m.subject, id: m.headers?.get("ce-id") ?? "",
            type: m.headers?.get("ce-type") ?? "", deadLetter: m.headers?.get("ce-deadletterreason") ?? "",
            traceParent: m.headers?.get("traceparent") ?? "",
            body: m.data, ack: async () => m.ack(),
          });
        }
      })().catch((err) => {
        process.stderr.write(`subscriber: nats: ${err.message}\n`);
        finish(1);
      });
    }
    if (cfg.kafka.length > 0) {
      const kafka = new Kafka({ clientId: "senfenico-subscriber-node", brokers: cfg.kafka, logLevel: logLevel.WARN, logCreator: stderrLogs });
      // disconnect() waits for the fetch in flight, which the broker holds
      // for up to maxWaitTimeInMs when nothing arrives: 5 s by default, which
      // made Ctrl-C take seconds. The Go subscriber waits 500 ms too.
      // The bridge creates a topic with its first event, so a subscriber
      // started first finds none; kafkajs' subscribe throws on a missing
      // topic. Wait for them instead, as the Go and Python subscribers do.
      const admin = kafka.admin();
      await admin.connect();
      closers.push(() => admin.disconnect());
      for (let said = false; ; ) {
        const existing = new Set(await admin.listTopics());
        const missing = cfg.topics.filter((t) => !existing.has(t));
        if (missing.length === 0) break;
        if (!said) {
          process.stderr.write(`subscriber: waiting for Kafka topics ${missing.join(",")} (the bridge creates each with its first event)\n`);
          said = true;
        }
        let timer;
        const stop = await Promise.race([
          finished.then(() => true),
          new Promise((res) => (timer = setTimeout(() => res(false), 1000))),
        ]);
        clearTimeout(timer);
        if (stop) return await finished;
      }
      const consumer = kafka.consumer({ groupId: cfg.group, maxWaitTimeInMs: 500 });
      await consumer.connect();
      closers.push(() => consumer.disconnect());
      await consumer.subscribe({ topics: cfg.topics, fromBeginning: true });
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (!payload.restart) {
          process.stderr.write(`subscriber: kafka: ${payload.error?.message}\n`);
          finish(1);
        }
      });
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ topic, partition, message }) => {
          const header = (name) => message.headers?.[name]?.toString("utf8") ?? "";
          await handle({
            broker: "kafka", subject: topic, id: header("ce_id"), type: header("ce_type"),
            deadLetter: header("ce_deadletterreason"), traceParent: header("traceparent"),
            body: message.value ?? new Uint8Array(),
            ack: () => consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]),
          });
        },
      });
    }
    process.stderr.write("subscriber ready\n");
    return await finished;
  } finally {
    // Closed in reverse order, each at most once; kafkajs' disconnect waits
    // for eachMessage to return, which it does once finish was called.
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (err) {
        process.stderr.write(`subscriber: close: ${err.message}\n`);
      }
    }
  }
}

try {
  process.exitCode = await main();
} catch (err) {
  // A failure to start (a wrong reader URL, a stopped bridge, a refused
  // consumer) is one line, as in the Go and Python subscribers.
  process.stderr.write(`subscriber: ${err.message}\n`);
  process.exitCode = 1;
}
