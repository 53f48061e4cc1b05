package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/schemas"
)

func init() {
	subcommands["send"] = subcommand{summary: "send a signed test notification to a bridge", run: runSend}
}

func runSend(ctx context.Context, args []string, env map[string]string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("send", "<event> [flags]",
		`Send posts a notification for <event> (such as charge.success) to a running
bridge, built and signed the way Senfenico does it: data is a JSON string
holding the object, laid out by Python's json.dumps, and X-Webhook-Hash is
made with the first key of SENFENICO_WEBHOOK_KEYS. The data has the fields
of the event's family (checkout, charge, settlement, transfer; other
families get reference, amount and status) and its status is the event's
second token. Send prints the HTTP status and the answer, one line each, and
exits 0 on 200 OK, 1 otherwise.

With --print, nothing is sent: the header and the body are printed, one line
each, to send by other means:
  senfenico-bridge send charge.success --print > req.txt
  curl -H "$(head -1 req.txt)" --data-binary "$(tail -1 req.txt)" http://127.0.0.1:8080/webhooks/senfenico`)
	url := fs.String("url", defaultWebhookURL(env), "the bridge's webhook URL; the default follows LISTEN_ADDR and WEBHOOK_PATH")
	var opts payloadOptions
	fs.StringVar(&opts.reference, "reference", "", "data.reference (default a fresh random UUID)")
	fs.Int64Var(&opts.amount, "amount", 0, "data.amount (default the family's sample amount, such as 2000 for charges)")
	fs.BoolVar(&opts.live, "live", false, "set data.live_mode to true")
	fs.BoolVar(&opts.dataObject, "data-object", false, "send data as a JSON object, as Senfenico's guide shows it, instead of a JSON string")
	printOnly := fs.Bool("print", false, "print the header and the body instead of sending them")
	key := fs.String("key", "", keyFlagHelp)
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, "send", "want one event name such as charge.success, got %q", pos)
	}
	k, err := signingKey(*key, env)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge send: %v\n", err)
		return exitUsage
	}
	fs.Visit(func(f *flag.Flag) { opts.amountSet = opts.amountSet || f.Name == "amount" })
	opts.now = time.Now()
	body, err := buildPayload(pos[0], opts)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge send: %v\n", err)
		return exitFailed
	}
	hash := webhook.Sign(body, k)
	if *printOnly {
		fmt.Fprintf(stdout, "%s: %s\n%s\n", webhook.HeaderName, hash, body)
		return exitOK
	}
	return post(ctx, *url, body, hash, stdout, stderr)
}

// post sends one notification and reports the answer.
func post(ctx context.Context, url string, body []byte, hash string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return usageError(stderr, "send", "--url: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.HeaderName, hash)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge send: %v\n", err)
		return exitFailed
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge send: read answer: %v\n", err)
	}
	fmt.Fprintf(stdout, "%s %s\n%s\n", resp.Proto, resp.Status, strings.TrimSpace(string(answer)))
	if resp.StatusCode != http.StatusOK {
		return exitFailed
	}
	return exitOK
}

// defaultWebhookURL is where a bridge started with env listens on this
// machine, with the bridge's own defaults for what env leaves out.
func defaultWebhookURL(env map[string]string) string {
	addr, path := env["LISTEN_ADDR"], env["WEBHOOK_PATH"]
	if addr == "" {
		addr = ":8080"
	}
	if path == "" {
		path = "/webhooks/senfenico"
	}
	return "http://" + localAddr(addr) + path
}

// payloadOptions are what a user may choose in a generated notification.
type payloadOptions struct {
	reference  string
	amount     int64
	amountSet  bool
	live       bool
	dataObject bool
	now        time.Time
}

// buildPayload returns the body Senfenico would send for event, byte for
// byte: json.dumps of {"event": ..., "data": json.dumps(data)}.
func buildPayload(event string, o payloadOptions) ([]byte, error) {
	if o.reference == "" {
		o.reference = randomUUID()
	}
	data, err := pythonJSON(sampleData(event, o))
	if err != nil {
		return nil, err
	}
	var dataVal any = string(data)
	if o.dataObject {
		dataVal = json.RawMessage(data)
	}
	return pythonJSON(object{{"event", event}, {"data", dataVal}})
}

// pythonJSON writes v as CPython's json.dumps would: pyjson re-lays out
// encoding/json's text, so the separators, escapes and float forms are
// Python's.
func pythonJSON(v any) ([]byte, error) {
	text, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	doc, err := pyjson.Parse(text)
	if err != nil {
		return nil, err
	}
	return doc.AppendPython(nil), nil
}

// sampleAmounts are the amounts of the shared test vectors, per family.
var sampleAmounts = map[string]int64{"checkout": 1000, "charge": 2000, "settlement": 500, "transfer": 1500}

// sampleData is a data object with the fields of event's family, in the
// order of the SDKs' data classes, with values like Senfenico's.
func sampleData(event string, o payloadOptions) object {
	family := schemas.Family(event)
	amount, ok := sampleAmounts[family]
	switch {
	case o.amountSet:
		amount = o.amount
	case !ok:
		amount = 1000
	}
	var status any // null when the event has no second token
	if parts := strings.Split(event, "."); len(parts) > 1 {
		status = parts[1]
	}
	now := o.now.UTC()
	created, updated := now.Add(-time.Minute).Format(time.RFC3339), now.Format(time.RFC3339)
	switch family {
	case "checkout":
		return object{{"email", "customer@mail.com"}, {"reference", o.reference}, {"charge_reference", nil},
			{"amount", amount}, {"success_url", "https://yourwebsite.com/"}, {"cancel_url", "https://yourwebsite.com/"},
			{"phone", ""}, {"provider", ""}, {"live_mode", o.live}, {"created_at", created}, {"updated_at", updated},
			{"status", status}}
	case "charge":
		attempt := object{{"ip_address", "41.78.1.2"}, {"attempt_date", updated}, {"confirmation_status", "confirmed"}}
		return object{{"reference", o.reference}, {"amount", amount}, {"fees", pyFloat(float64(amount) * 15 / 1000)},
			{"currency", "XOF"}, {"transaction_date", updated}, {"ip_address", "41.78.1.2"}, {"status", status},
			{"live_mode", o.live}, {"payment_method", "mobile_money"}, {"provider", "orange_bf"}, {"phone", "65000000"},
			{"cancelled_at", nil}, {"cancellation_reason", nil}, {"created_at", created}, {"updated_at", updated},
			{"confirmation_attempts", []object{attempt}}}
	case "settlement":
		return object{{"reference", o.reference}, {"amount", amount}, {"settlement_fees", pyFloat(float64(amount) / 100)},
			{"currency", "XOF"}, {"status", status}, {"live_mode", o.live}, {"created_at", created}, {"updated_at", updated},
			{"account_type", "mobile_money"}, {"iban", nil}, {"rib", nil}, {"bank_name", nil}, {"bank_address", nil},
			{"account_holder_name", nil}, {"account_holder_address", nil}, {"swift_bic_code", nil},
			{"provider", "orange_bf"}, {"phone", "65000000"}, {"usdt_wallet_address", nil}}
	case "transfer":
		return object{{"reference", o.reference}, {"amount", amount}, {"fees", pyFloat(float64(amount) / 100)},
			{"currency", "XOF"}, {"ip_address", "41.78.1.2"}, {"status", status}, {"live_mode", o.live},
			{"recipient_wallet", "moov_bf"}, {"recipient_phone", "70000000"}, {"created_at", created},
			{"ext_id", "order-" + strconv.FormatInt(amount, 10)}}
	}
	return object{{"reference", o.reference}, {"amount", amount}, {"status", status}}
}

// object is a JSON object that keeps its members in order, as Python's
// dicts do and as Senfenico's bodies show them.
type object []member

type member struct {
	key string
	val any
}

// MarshalJSON implements json.Marshaler.
func (o object) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, m := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.val)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// pyFloat is a number the SDKs declare as float: Python writes 5.0 where
// encoding/json would write 5, which would read back as an int.
type pyFloat float64

// MarshalJSON implements json.Marshaler.
func (f pyFloat) MarshalJSON() ([]byte, error) {
	b := strconv.AppendFloat(nil, float64(f), 'g', -1, 64)
	if !bytes.ContainsAny(b, ".eE") {
		b = append(b, ".0"...)
	}
	return b, nil
}

// randomUUID returns a random version 4 UUID, the shape of Senfenico's
// references.
func randomUUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails: crypto/rand aborts the process instead
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
