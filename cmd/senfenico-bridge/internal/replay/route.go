package replay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// ErrNotNotification is returned (wrapped) by BridgeRouter.Route for a body
// the bridge does not take as a notification.
var ErrNotNotification = errors.New("replay: the bridge does not read the body as a notification")

// Router decides where a dead letter's body goes today.
type Router interface {
	// Route returns the message the bridge would publish for body, the
	// request body a dead letter kept: routed under its event's subject
	// (DeadLetterReason empty), or a dead letter again, with the reason.
	Route(ctx context.Context, body []byte) (sinks.Message, error)
}

// maxRouteBody bounds the bodies a BridgeRouter reads: more than any
// broker stores (the embedded NATS server takes 8 MiB a message), so that
// a dead letter stored under a larger MAX_BODY_BYTES than today's is still
// read. Bodies come from the broker, one at a time.
const maxRouteBody = 16 << 20

// BridgeRouter routes with the bridge's own code, so that a redrive goes
// where the bridge, as configured now, would send the event: a
// bridge.Server in the process, without a listener, handed each body
// signed with a key of its own, publishing into a sink that keeps the
// message instead of sending it. A dead letter's body is the request body
// exactly as received, so the bridge decodes it as it did then (same
// ce-id) and routes it by today's TopicPrefix, Families, DeadLetterSubject
// and, in enforce mode, the schemas. It is safe for concurrent use.
type BridgeRouter struct {
	handler http.Handler
	path    string
	key     string
	mu      sync.Mutex // one Route at a time: kept holds its message
	kept    keeper
}

// NewBridgeRouter builds a BridgeRouter from the bridge's configuration.
// The routing fields matter (TopicPrefix, DeadLetterSubject, Families,
// SchemaMode with Validator); Keys, addresses, limits and Logger are
// replaced, and warn mode, which never changes where an event goes, is
// off. Errors wrap bridge.ErrConfig.
func NewBridgeRouter(cfg bridge.Config) (*BridgeRouter, error) {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails since Go 1.24
	r := &BridgeRouter{key: hex.EncodeToString(raw[:])}
	cfg.Keys = []string{r.key}
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.MaxBodyBytes = maxRouteBody
	cfg.MaxBodyMemory = maxRouteBody
	cfg.Routes = nil
	cfg.Logger = slog.New(slog.DiscardHandler)
	if cfg.SchemaMode != bridge.SchemaEnforce {
		cfg.SchemaMode, cfg.Validator = bridge.SchemaOff, nil
	}
	if cfg.WebhookPath == "" {
		cfg.WebhookPath = bridge.DefaultWebhookPath
	}
	srv, err := bridge.New(cfg, &r.kept, nil)
	if err != nil {
		return nil, err
	}
	r.handler, r.path = srv.Handler(), cfg.WebhookPath
	return r, nil
}

// Route returns the message the bridge would publish for body (see
// Router), its Time the moment of the call. It fails with an error
// wrapping ErrNotNotification when the bridge does not answer 200 (a body
// that is not a JSON object with a string event).
func (r *BridgeRouter) Route(ctx context.Context, body []byte) (sinks.Message, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.path, bytes.NewReader(body))
	if err != nil {
		return sinks.Message{}, err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set(webhook.HeaderName, webhook.Sign(body, r.key))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kept.msg = nil
	var w answer
	r.handler.ServeHTTP(&w, req)
	if w.status != http.StatusOK || r.kept.msg == nil {
		return sinks.Message{}, fmt.Errorf("%w: it answers %d %s", ErrNotNotification, w.status, bytes.TrimSpace(w.body.Bytes()))
	}
	return *r.kept.msg, nil
}

// keeper is the sink of a BridgeRouter's server: it keeps the message the
// bridge publishes and confirms it.
type keeper struct {
	msg *sinks.Message
}

func (k *keeper) Name() string { return "replay" }

func (k *keeper) Publish(_ context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	m := *msg
	// A dead letter's body is the request's buffer, which the server may
	// reuse once it answered.
	m.Body = bytes.Clone(msg.Body)
	k.msg = &m
	return sinks.Receipt{}, nil
}

func (k *keeper) Ready(context.Context) error { return nil }
func (k *keeper) Close(context.Context) error { return nil }

// answer is the http.ResponseWriter of a Route: the status, and the body
// for the error text.
type answer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (a *answer) Header() http.Header {
	if a.header == nil {
		a.header = http.Header{}
	}
	return a.header
}

func (a *answer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

func (a *answer) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	if a.body.Len() < 256 {
		a.body.Write(b[:min(len(b), 256)])
	}
	return len(b), nil
}
