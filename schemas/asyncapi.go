package schemas

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// AsyncAPIPath is the URL path at which AsyncAPIHandler serves the
// document.
const AsyncAPIPath = "/asyncapi.yaml"

// ContractVersion starts the document's info.version. Raise it when a
// change can break a consumer (a channel, header or field removed or
// retyped); the build metadata that follows it ("+" and 12 hex digits of
// the document's SHA-256) changes with every edit by itself, so two
// documents with one version are the same document.
const ContractVersion = "1.0.0"

// What the document says about the rest of the bridge. They are literals
// rather than imports so that this package stays free of the broker
// clients (the Go subscriber and the load generator import it);
// TestAsyncAPIMatchesTheBridge holds each one to the constant it names, and
// TestAsyncAPIHeadersMatchTheSinks the headers to what the sinks write.
const (
	deadLetterSubject     = "senfenico.unroutable" // bridge.DefaultDeadLetterSubject
	natsStream            = "SENFENICO"            // natssink.DefaultStream
	natsHost              = "127.0.0.1:4222"       // natsembed.DefaultListen
	kafkaClientID         = "senfenico-bridge"     // kafkasink.DefaultClientID
	reasonFamilyNotListed = "family-not-listed"    // bridge.ReasonFamilyNotListed
	specVersion           = "1.0"                  // natssink.SpecVersion, kafkasink.SpecVersion
)

// deadLetterReasons are the values of the dead-letter reason header, in
// the README's order.
var deadLetterReasons = []string{
	sinks.ReasonUnroutable, sinks.ReasonReserved, reasonFamilyNotListed,
	sinks.ReasonSubjectRefused, sinks.ReasonMalformedData, sinks.ReasonSchema,
}

// natsEncoded matches a string attribute as the CloudEvents NATS binding
// carries it: printable ASCII but space, '"' and '%', which go percent-
// encoded (%XY, upper-case hex) with every other byte.
const natsEncoded = `^(?:[!#$&-~]|%[0-9A-F]{2})*$`

// idPattern is a ce-id: 128 bits in lower-case hex.
const idPattern = `^[0-9a-f]{32}$`

// kafkaBindingVersion is the version of the Kafka bindings used.
const kafkaBindingVersion = "0.5.0"

// broker is one server of the document.
type broker struct {
	id       string // server id, first word of its channels', messages' and operations' ids
	title    string
	cePrefix string // of a CloudEvents attribute's header
}

var brokers = []broker{
	{id: "nats", title: "NATS", cePrefix: "ce-"},
	{id: "kafka", title: "Kafka", cePrefix: "ce_"},
}

func (b broker) ce(attr string) string { return b.cePrefix + attr }

// AsyncAPI returns the AsyncAPI 3.0 document of every channel the bridge
// publishes on, as YAML: one channel per event family with a schema, one
// for every other family and one for dead letters, on NATS and on Kafka,
// with the headers of each message as a schema and the payloads built from
// the embedded JSON Schemas (Files), so that the document cannot say
// anything else than the schemas the bridge validates with. The bytes are
// the same on every call and every build of the same source; each call
// returns a new slice. It is safe for concurrent use.
func AsyncAPI() []byte {
	doc, err := asyncAPIDocument()
	if err != nil {
		// Built from files fixed at build time: failing here is a broken
		// binary, which the package's tests rule out.
		panic(err)
	}
	return bytes.Clone(doc.yaml)
}

type renderedDocument struct {
	yaml, json []byte
}

var asyncAPIDocument = sync.OnceValues(renderAsyncAPI)

func renderAsyncAPI() (renderedDocument, error) {
	doc, err := buildAsyncAPI()
	if err != nil {
		return renderedDocument{}, err
	}
	// The version is a hash of the document with an empty version.
	unversioned, err := json.Marshal(doc)
	if err != nil {
		return renderedDocument{}, fmt.Errorf("schemas: asyncapi: %w", err)
	}
	sum := sha256.Sum256(unversioned)
	info, _ := doc.get("info")
	doc = doc.with("info", info.(object).with("version", ContractVersion+"+"+hex.EncodeToString(sum[:6])))
	js, err := json.Marshal(doc)
	if err != nil {
		return renderedDocument{}, fmt.Errorf("schemas: asyncapi: %w", err)
	}
	y := []byte("# The AsyncAPI document of senfenico-bridge, generated from its JSON Schemas\n# (GET /schemas/<name>.json); served at " + AsyncAPIPath + ".\n")
	return renderedDocument{yaml: appendYAML(y, doc), json: js}, nil
}

func buildAsyncAPI() (object, error) {
	components, err := componentSchemas()
	if err != nil {
		return nil, err
	}
	components = append(components,
		member{"DeadLetterBody", object{
			{"title", "DeadLetterBody"},
			{"description", "The request body of a dead letter, exactly as Senfenico sent it (its data usually a JSON string): a JSON value."},
		}},
		member{"DeadLetterBytes", object{
			{"title", "DeadLetterBytes"},
			{"type", "string"},
			{"format", "binary"},
			{"description", "The request body of a dead letter that is not JSON, exactly as received."},
		}})
	for _, b := range brokers {
		components = append(components,
			member{headersName(b, false), headersSchema(b, false)},
			member{headersName(b, true), headersSchema(b, true)})
	}
	families := familyNames()
	channels, operations, messages := object{}, object{}, object{}
	for _, b := range brokers {
		for _, c := range brokerChannels(b, families) {
			channelMessages := object{}
			var refs []any
			for _, m := range c.messages {
				messages = append(messages, member{m.id, m.message})
				channelMessages = append(channelMessages, member{m.key, ref("#/components/messages/" + m.id)})
				refs = append(refs, ref("#/channels/"+c.id+"/messages/"+m.key))
			}
			params := object{}
			for _, p := range c.params {
				params = append(params, member{p, ref("#/components/parameters/" + p)})
			}
			channels = append(channels, member{c.id, object{
				{"address", c.address},
				{"title", c.title},
				{"description", c.description},
				{"servers", []any{ref("#/servers/" + b.id)}},
				{"parameters", params},
				{"messages", channelMessages},
			}})
			op := object{
				{"action", "send"},
				{"channel", ref("#/channels/" + c.id)},
				{"title", "Publish " + c.what + " on " + b.title},
				{"summary", c.summary},
				{"messages", refs},
			}
			if b.id == "kafka" {
				op = append(op, member{"bindings", object{{"kafka", object{
					{"clientId", object{{"type", "string"}, {"enum", []any{kafkaClientID}}}},
					{"bindingVersion", kafkaBindingVersion},
				}}}})
			}
			operations = append(operations, member{b.id + "Send" + c.name, op})
		}
	}
	return object{
		{"asyncapi", "3.0.0"},
		{"info", object{
			{"title", "senfenico-bridge"},
			{"version", ""},
			{"description", infoDescription},
		}},
		{"defaultContentType", sinks.ContentTypeJSON},
		{"servers", servers()},
		{"channels", channels},
		{"operations", operations},
		{"components", object{
			{"schemas", components},
			{"messages", messages},
			{"parameters", parameters(families)},
			{"securitySchemes", object{
				{"natsUserPassword", object{
					{"type", "userPassword"},
					{"description", "A reader of the embedded NATS server logs in with its user and password (DATA_DIR/readers/<name>.url holds a ready URL); anonymous clients are refused. An external NATS server (NATS_URL) has the credentials its operator set up."},
				}},
			}},
		}},
	}, nil
}

const infoDescription = `The messages senfenico-bridge publishes for the Senfenico webhooks it verified, identical on NATS and Kafka: CloudEvents 1.0 in binary mode (attributes in headers, the event in the body).

- **Routed events** go to ` + "`TOPIC_PREFIX` + event name" + ` (` + "`checkout.success`" + `), the body ` + "`{\"event\": ..., \"data\": {...}}`" + ` with data decoded to an object. Each family with a JSON Schema (checkout, charge, settlement, transfer) has a channel of its own; any other family is routed under its own name too, checked against the envelope only.
- **Dead letters** (verified events that cannot be routed) go to ` + "`DEAD_LETTER_SUBJECT`" + `, the request body exactly as received, with a reason header.

Consumers must be idempotent on ce-id (Kafka: ce_id): every resend of one notification carries the same id, and a resend can land after a lost answer. The payload schemas are generated from the JSON Schemas (draft 2020-12) the bridge serves at /schemas/<name>.json and validates with; each links to its file.`

func servers() object {
	return object{
		{"nats", object{
			{"host", "{host}"},
			{"protocol", "nats"},
			{"title", "NATS"},
			{"description", "The bridge's embedded NATS server (the default) or the one at NATS_URL. With NATS_MODE=jetstream (the default) the JetStream stream " + natsStream + " (NATS_STREAM) stores every subject below, dropping a second message with the same Nats-Msg-Id within its duplicate window (DEDUP_WINDOW); read it through a JetStream consumer, which sees what the stream stored, once. A core subscription also sees copies the stream dropped. With NATS_MODE=core nothing is stored."},
			{"variables", object{{"host", object{
				{"default", natsHost},
				{"description", "host:port of the server: NATS_EMBEDDED_LISTEN for the embedded one, else a server of NATS_URL."},
			}}}},
			{"security", []any{ref("#/components/securitySchemes/natsUserPassword")}},
		}},
		{"kafka", object{
			{"host", "{host}"},
			{"protocol", "kafka"},
			{"title", "Kafka"},
			{"description", "The Kafka cluster of KAFKA_BROKERS. The bridge creates each topic before its first record (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION, KAFKA_TOPIC_MIN_ISR), writes with acks=all and partitions by the record key with murmur2, as Kafka's Java client does: one payment's events land on one partition, in order."},
			{"variables", object{{"host", object{
				{"default", "localhost:9092"},
				{"description", "host:port of a broker of KAFKA_BROKERS."},
			}}}},
		}},
	}
}

func parameters(families []string) object {
	return object{
		{"topicPrefix", object{
			{"default", ""},
			{"description", "TOPIC_PREFIX: empty (the default), or tokens of [A-Za-z0-9_-] each followed by a dot, e.g. payments."},
			{"examples", []any{"", "payments."}},
		}},
		{"status", object{
			{"description", "The rest of the event name after its family: one or more tokens of [A-Za-z0-9_-] joined by single dots."},
			{"examples", []any{"success", "pending", "failed"}},
		}},
		{"family", object{
			{"description", "The event's family, the first token of its name, when it is none of " + strings.Join(families, ", ") + ": a family Senfenico adds later is routed under its own name (unless EVENT_FAMILIES leaves it out, which makes it a dead letter)."},
			{"examples", []any{"refund"}},
		}},
		{"deadLetterSubject", object{
			{"default", deadLetterSubject},
			{"description", "DEAD_LETTER_SUBJECT (default " + deadLetterSubject + "), used as it is: TOPIC_PREFIX is not put before it."},
		}},
	}
}

type channelSpec struct {
	id, name, address    string
	title                string
	what                 string // what it carries, in the operation's title: "charge.* events"
	summary, description string
	params               []string
	messages             []messageSpec
}

type messageSpec struct {
	key, id string // key in its channel, id in components.messages
	message object
}

func brokerChannels(b broker, families []string) []channelSpec {
	var out []channelSpec
	for _, f := range families {
		name := pascal(f)
		out = append(out, channelSpec{
			id:          b.id + name,
			name:        name,
			address:     "{topicPrefix}" + f + ".{status}",
			title:       f + ".* events on " + b.title,
			what:        f + ".* events",
			summary:     "Publish a verified " + f + ".* event.",
			description: "Every routed " + f + ".* event (" + f + ".success and the others), its data described by " + f + ".json.",
			params:      []string{"topicPrefix", "status"},
			messages:    []messageSpec{{key: f + "Event", id: b.id + name + "Event", message: eventMessage(b, f)}},
		})
	}
	out = append(out, channelSpec{
		id:          b.id + "OtherFamily",
		name:        "OtherFamily",
		address:     "{topicPrefix}{family}.{status}",
		title:       "Other families' events on " + b.title,
		what:        "events of other families",
		summary:     "Publish a verified event of a family without a schema of its own.",
		description: "Every routed event whose family has no schema of its own (refund.created, say), checked against the envelope only; an event name of one token is published under that token alone.",
		params:      []string{"topicPrefix", "family", "status"},
		messages:    []messageSpec{{key: "event", id: b.id + "Event", message: eventMessage(b, "")}},
	}, channelSpec{
		id:          b.id + "DeadLetter",
		name:        "DeadLetter",
		address:     "{deadLetterSubject}",
		title:       "Dead letters on " + b.title,
		what:        "dead letters",
		summary:     "Publish a verified event that cannot be routed.",
		description: "Verified events that are not routed, kept rather than refused (Senfenico would drop them after an hour): the event name cannot be a subject, is reserved or not listed in EVENT_FAMILIES, the broker refused its subject, its data is not JSON, or it failed its schema with SCHEMA_VALIDATION=enforce. The reason is in a header.",
		params:      []string{"deadLetterSubject"},
		messages: []messageSpec{
			{key: "deadLetter", id: b.id + "DeadLetter", message: deadLetterMessage(b, false)},
			{key: "deadLetterBytes", id: b.id + "DeadLetterBytes", message: deadLetterMessage(b, true)},
		},
	})
	return out
}

func eventMessage(b broker, family string) object {
	payload, title, summary := "Event", "Event", "A verified event of a family without a schema of its own: its name and its data, decoded to an object."
	if family != "" {
		payload = eventName(family)
		title = pascal(family) + " event"
		summary = "A verified " + family + ".* event: its name and its data, decoded to an object."
	}
	return withKafkaKey(b, object{
		{"name", payload},
		{"title", title},
		{"summary", summary},
		{"contentType", sinks.ContentTypeJSON},
		{"headers", ref("#/components/schemas/" + headersName(b, false))},
		{"payload", ref("#/components/schemas/" + payload)},
	})
}

func deadLetterMessage(b broker, notJSON bool) object {
	m := object{
		{"name", "DeadLetter"},
		{"title", "Dead letter"},
		{"summary", "A verified event that was not routed: the request body exactly as received, JSON."},
		{"contentType", sinks.ContentTypeJSON},
		{"headers", ref("#/components/schemas/" + headersName(b, true))},
		{"payload", ref("#/components/schemas/DeadLetterBody")},
	}
	if notJSON {
		m = object{
			{"name", "DeadLetterBytes"},
			{"title", "Dead letter, not JSON"},
			{"summary", "A verified event that was not routed and whose body is not JSON (every malformed-data dead letter among them): the bytes as received, promising nothing."},
			{"contentType", sinks.ContentTypeOctetStream},
			{"headers", ref("#/components/schemas/" + headersName(b, true))},
			{"payload", ref("#/components/schemas/DeadLetterBytes")},
		}
	}
	return withKafkaKey(b, m)
}

func withKafkaKey(b broker, m object) object {
	if b.id != "kafka" {
		return m
	}
	return append(m, member{"bindings", object{{"kafka", object{
		{"key", object{
			{"type", "string"},
			{"description", "data.reference (the checkout, charge, settlement or transfer), or ce_id when the event has none: one payment's events land on one partition, in order."},
		}},
		{"bindingVersion", kafkaBindingVersion},
	}}}})
}

func headersName(b broker, deadLetter bool) string {
	if deadLetter {
		return pascal(b.id) + "DeadLetterHeaders"
	}
	return pascal(b.id) + "Headers"
}

// headersSchema is the schema of the headers of a routed event (or a dead
// letter) on b.
func headersSchema(b broker, deadLetter bool) object {
	props := object{}
	var required []any
	add := func(name string, req bool, schema object) {
		props = append(props, member{name, schema})
		if req {
			required = append(required, name)
		}
	}
	str := func(description string, more ...member) object {
		return append(object{{"type", "string"}}, append(more, member{"description", description})...)
	}
	encoding := "plain UTF-8 (the Kafka binding encodes nothing)"
	if b.id == "nats" {
		encoding = "percent-encoded as the CloudEvents NATS binding says (space, '\"', '%' and every byte outside printable ASCII as %XY)"
	}

	add(b.ce("specversion"), true, str("CloudEvents specification version.", member{"const", specVersion}))
	add(b.ce("id"), true, str("CloudEvents id: the first 128 bits of SHA-256 over the notification's document in CPython's json.dumps form, in hex. Every resend of one notification, and every byte form of it that verifies, has this id; consumers deduplicate on it.", member{"pattern", idPattern}))
	if deadLetter {
		typ := str("CloudEvents type: the event name as received, made a CloudEvents string (invalid UTF-8 and control characters replaced by U+FFFD) and cut at 256 bytes, "+encoding+"; the full name is in the body.", member{"minLength", 1})
		if b.id == "nats" {
			typ = append(typ[:1], append(object{{"pattern", natsEncoded}}, typ[1:]...)...)
		} else {
			typ = append(typ[:1], append(object{{"maxLength", 256}}, typ[1:]...)...)
		}
		add(b.ce("type"), true, typ)
	} else {
		add(b.ce("type"), true, str("CloudEvents type: the event name, the body's event, e.g. charge.success.", member{"minLength", 1}, member{"maxLength", 249}, member{"pattern", eventPattern}))
	}
	add(b.ce("source"), true, str("CloudEvents source.", member{"const", sinks.Source}))
	add(b.ce("time"), true, str("When the bridge received the notification, RFC 3339 in UTC.", member{"format", "date-time"}))
	contentType := str("Media type of the body.", member{"const", sinks.ContentTypeJSON})
	if deadLetter {
		contentType = str("Media type of the body: application/json when it is JSON, application/octet-stream otherwise.", member{"enum", []any{sinks.ContentTypeJSON, sinks.ContentTypeOctetStream}})
	}
	if b.id == "nats" {
		add(b.ce("datacontenttype"), true, contentType)
	}
	add("content-type", true, contentType)
	if b.id == "nats" {
		add("Nats-Msg-Id", true, str("The ce-id again: JetStream's duplicate window drops a second message with the same id. A replayed copy's is the ce-id, a colon and the replay run's id.", member{"pattern", strings.TrimSuffix(idPattern, "$") + "(:[0-9A-Za-z_-]+)?$"}))
		add("Nats-Batch-Id", false, str("JetStream, on a message the stream stored through an atomic batch only: the batch's id (the server's bookkeeping; consumers can ignore it)."))
		add("Nats-Batch-Sequence", false, str("JetStream, atomic batches only: the message's place in its batch, from 1.", member{"pattern", `^[1-9][0-9]*$`}))
		add("Nats-Batch-Commit", false, str("JetStream, atomic batches only: on the batch's last message, which committed it (\"1\")."))
	}
	add("traceparent", false, str("W3C Trace Context of the webhook's trace: the bridge's producer span when tracing is on, else the request's own traceparent when it had one. Absent when neither.", member{"pattern", `^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`}))
	add(b.ce("replayrun"), false, str("Replayed copies only (senfenico-bridge replay): the replay run's id."))
	add(b.ce("replayfrom"), false, str("Replayed copies only: the subject or topic the copy was read from (the dead-letter subject for a redriven dead letter)."))
	add("tracestate", false, str("W3C tracestate going with traceparent, at most 512 bytes.", member{"maxLength", 512}))
	if deadLetter {
		var reasons []any
		for _, r := range deadLetterReasons {
			reasons = append(reasons, r)
		}
		add(b.ce("deadletterreason"), true, str("Why the event is a dead letter: unroutable-event (the name cannot be a subject), reserved-name (a token starting with _, or the dead-letter subject's own), family-not-listed (EVENT_FAMILIES leaves its family out), subject-refused (the broker will not take it on its subject), malformed-data (its data is not JSON), schema-invalid (it failed its schema, SCHEMA_VALIDATION=enforce).", member{"enum", reasons}))
		detail := str("Why, in one line of UTF-8 without control characters, "+encoding+"; absent when there is nothing to add.", member{"minLength", 1})
		if b.id == "nats" {
			detail = append(detail[:1], append(object{{"pattern", natsEncoded}}, detail[1:]...)...)
		}
		add(b.ce("deadletterdetail"), false, detail)
	}

	what := "a routed event"
	if deadLetter {
		what = "a dead letter"
	}
	return object{
		{"type", "object"},
		{"title", headersName(b, deadLetter)},
		{"description", "The " + b.title + " headers of " + what + ". Other headers may follow (a broker's or a proxy's); consumers ignore those they do not know."},
		{"required", required},
		{"properties", props},
		{"additionalProperties", true},
	}
}

// eventPattern is the envelope's pattern of an event name, read from
// envelope.json.
var eventPattern = func() string {
	raw, err := Files.ReadFile(EnvelopeName + ".json")
	if err != nil {
		panic("schemas: read embedded " + EnvelopeName + ": " + err.Error())
	}
	var env struct {
		Properties struct {
			Event struct {
				Pattern string `json:"pattern"`
			} `json:"event"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Properties.Event.Pattern == "" {
		panic(fmt.Sprintf("schemas: %s.json has no event pattern: %v", EnvelopeName, err))
	}
	return env.Properties.Event.Pattern
}()

// familyNames are the families with a schema of their own.
func familyNames() []string {
	var out []string
	for _, name := range Names() {
		if name != EnvelopeName {
			out = append(out, name)
		}
	}
	return out
}

func ref(to string) object { return object{{"$ref", to}} }

// pascal turns a schema or definition name ("confirmation_attempt") into
// an identifier part ("ConfirmationAttempt").
func pascal(name string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// eventName is the component of a family's published body; the envelope's
// is "Event".
func eventName(family string) string { return pascal(family) + "Event" }

// dataName is the component of a schema file.
func dataName(file string) string {
	if file == EnvelopeName {
		return "Event"
	}
	return pascal(file) + "Data"
}

// defName is the component of a definition in a schema file's $defs.
func defName(file, def string) string { return pascal(file) + pascal(def) }
