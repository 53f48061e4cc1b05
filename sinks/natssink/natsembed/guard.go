package natsembed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"golang.org/x/time/rate"
)

// The guard stands between each reader and the JetStream API of the
// bridge's account. nats-server's permissions match whole subject tokens
// and know no owner of a consumer, so they cannot say "your consumers
// only". So each reader has an account of its own, whose "$JS.API.>" and
// "$JS.ACK.>" reach the bridge's account only here (access.go, the
// reader's name in the subject set by the server), and the guard passes on
// what the reader may do, every consumer name moved into the reader's
// namespace (Name + "_"), and answers the rest with a JetStream API error.
// What it passes on is answered on answerPrefix + the reader's inbox, which
// the server delivers into the reader's account alone: JetStream's answers
// and the messages of a pull go there without passing through the guard
// (a client may not publish with a "$JS.ACK." reply, only the server), so
// the guard adds one hop to a request and none to a message read.

// What one reader may have waiting in one of the guard's subscriptions
// before more is dropped (nats.go's defaults, 512k messages and 64 MiB,
// would let 32 readers hold gigabytes).
const pendingRequests, pendingBytes = 10000, 8 << 20

// errCodeReaderRefused is the err_code of the guard's refusals: outside
// nats-server's own codes, so a client shows it as a plain API error.
const errCodeReaderRefused = 10900

// guard serves the readers' requests; see above.
type guard struct {
	nc      *nats.Conn
	log     *slog.Logger
	readers []*guardedReader
	// creates serialises consumer creates, so that a reader's count cannot
	// be passed by two creates in flight at once. Creates are rare.
	creates sync.Mutex
}

// guardedReader is one reader's state in the guard.
type guardedReader struct {
	// prefix starts the reader's consumers' names; answers is where
	// answers to it go, before its inbox.
	name, prefix, answers string
	api, pull             *rate.Limiter
	ack                   *rate.Limiter
	// lastWarn is when the guard last logged a refusal of this reader's
	// (unix nanoseconds): a flooding reader gets one line every 10 s, not
	// one a request.
	lastWarn atomic.Int64
	// slow bounds the requests of this reader the guard answers itself
	// (consumer creates and lists, which call JetStream), so that they run
	// beside the reader's other requests without piling up.
	slow chan struct{}
}

// startGuard connects in process as the bridge and serves every reader.
func startGuard(ns *server.Server, bridgePassword string, readers []Reader, log *slog.Logger) (*guard, error) {
	var lastDrop atomic.Int64
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.UserInfo(BridgeUser, bridgePassword),
		nats.Name("senfenico-bridge reader guard"), nats.CustomInboxPrefix(BridgeInboxPrefix+".guard"),
		nats.MaxReconnects(-1),
		// A reader that floods its requests past the pending bound below
		// has them dropped; said at most every 10 s.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if now := time.Now().UnixNano(); now-lastDrop.Load() > int64(10*time.Second) {
				lastDrop.Store(now)
				subject := ""
				if sub != nil {
					subject = sub.Subject
				}
				log.Warn("reader requests dropped: a reader sends faster than the guard answers", "subject", subject, "err", err)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("natsembed: reader guard: %w", err)
	}
	g := &guard{nc: nc, log: log}
	for _, r := range readers {
		gr := &guardedReader{
			name: r.Name, prefix: r.Name + "_", answers: answerPrefix(r.Name) + ".",
			api:  rate.NewLimiter(apiRate, apiBurst),
			pull: rate.NewLimiter(pullRate, pullBurst),
			ack:  rate.NewLimiter(ackRate, ackBurst),
			slow: make(chan struct{}, 4),
		}
		g.readers = append(g.readers, gr)
		api := guardPrefix(r.Name) + ".$JS.API."
		ack := guardPrefix(r.Name) + ".$JS.ACK."
		subs := map[string]nats.MsgHandler{
			api + ">": func(m *nats.Msg) { g.serveAPI(gr, strings.TrimPrefix(m.Subject, api), m) },
			ack + ">": func(m *nats.Msg) { g.serveAck(gr, strings.TrimPrefix(m.Subject, ack), m) },
			// The service import's reply is the server's own: answered
			// as it is.
			accountInfoSubject(r.Name): func(m *nats.Msg) { g.serveAccountInfo(gr, m) },
		}
		for subject, handler := range subs {
			sub, err := nc.Subscribe(subject, handler)
			if err == nil {
				// What a reader has waiting in the guard is bounded: the
				// rates above refuse what comes faster, this drops what
				// comes faster than refusals.
				err = sub.SetPendingLimits(pendingRequests, pendingBytes)
			}
			if err != nil {
				nc.Close()
				return nil, fmt.Errorf("natsembed: reader guard: %w", err)
			}
		}
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsembed: reader guard: %w", err)
	}
	return g, nil
}

// stop closes the guard's connection; readers' requests go unanswered from
// then on. Safe on a nil guard.
func (g *guard) stop() {
	if g != nil {
		g.nc.Close()
	}
}

// warn logs a refusal of r's, at most one line every 10 s.
func (r *guardedReader) warn(log *slog.Logger, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := r.lastWarn.Load()
	if now-last < int64(10*time.Second) || !r.lastWarn.CompareAndSwap(last, now) {
		return
	}
	log.Warn(msg, append([]any{"reader", r.name}, args...)...)
}

// own returns the name a reader's consumer has on the server: names that
// already carry the reader's prefix (as the server's answers show them)
// stay, any other gets it, so that no name a reader can send reaches
// another reader's consumers (reader names hold no "_").
func (r *guardedReader) own(name string) string {
	if strings.HasPrefix(name, r.prefix) {
		return name
	}
	return r.prefix + name
}

// answerTo returns where an answer to m goes: the reader's inbox, in its
// own account. A reply outside "_INBOX." (a client with an inbox prefix of
// its own) cannot be reached: "".
func (r *guardedReader) answerTo(m *nats.Msg) string {
	inbox, ok := strings.CutPrefix(m.Reply, readerInboxPrefix)
	if !ok || inbox == "" {
		return ""
	}
	return r.answers + inbox
}

// serveAccountInfo answers "$JS.API.INFO" with the bridge account's.
func (g *guard) serveAccountInfo(r *guardedReader, m *nats.Msg) {
	if !r.api.Allow() || m.Reply == "" {
		return
	}
	resp, err := g.nc.Request("$JS.API.INFO", nil, 5*time.Second)
	if err != nil {
		return
	}
	_ = g.nc.Publish(m.Reply, resp.Data)
}

// serveAck passes on an acknowledgement (or nak, term, in-progress) of a
// message of one of the reader's own consumers. The ack subject is
// "<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>"
// (nats-server's v1 form, the one a single server writes); anything else,
// another reader's consumer above all, is dropped: acknowledging it would
// take a message from that reader.
func (g *guard) serveAck(r *guardedReader, rest string, m *nats.Msg) {
	tokens := strings.Split(rest, ".")
	if len(tokens) != 7 || !strings.HasPrefix(tokens[1], r.prefix) {
		r.warn(g.log, "reader acknowledged a message that is not its own; dropped", "subject", "$JS.ACK."+rest)
		g.refuse(r, m, "ack", "not a message of your consumers")
		return
	}
	if !r.ack.Allow() {
		g.refuse(r, m, "ack", "reader ack rate exceeded (%d a second)", ackRate)
		return
	}
	g.forward(r, "$JS.ACK."+rest, m, m.Data)
}

// serveAPI answers or passes on one JetStream API request of reader r;
// api is the subject after "$JS.API.".
func (g *guard) serveAPI(r *guardedReader, api string, m *nats.Msg) {
	tokens := strings.Split(api, ".")
	kind := tokens[0]
	if len(m.Data) > MaxAPIRequestBytes {
		g.refuse(r, m, kind, "request of %d bytes, at most %d", len(m.Data), MaxAPIRequestBytes)
		return
	}
	limiter := r.api
	if len(tokens) == 5 && tokens[0] == "CONSUMER" && tokens[1] == "MSG" && tokens[2] == "NEXT" {
		limiter = r.pull
	}
	if !limiter.Allow() {
		g.refuse(r, m, kind, "reader %s request rate exceeded; retry later", r.name)
		return
	}
	switch {
	case api == "INFO":
		// Served by the service import (serveAccountInfo); this is the
		// same request's copy through the reader's stream export.
		return
	case api == "STREAM.NAMES", api == "STREAM.LIST",
		len(tokens) == 3 && tokens[0] == "STREAM" && tokens[1] == "INFO",
		len(tokens) == 4 && tokens[0] == "STREAM" && tokens[1] == "MSG" && tokens[2] == "GET":
		g.slowly(r, m, strings.ToLower(tokens[0]), func() { g.call(r, "$JS.API."+api, m, m.Data) })
	case len(tokens) >= 3 && tokens[0] == "DIRECT" && tokens[1] == "GET":
		// Served by the stream itself, in the bridge's account: its answer
		// reaches the reader's inbox directly.
		if err := boundDirectGet(m.Data); err != nil {
			g.refuse(r, m, "direct_get", "%v", err)
			return
		}
		g.forward(r, "$JS.API."+api, m, m.Data)
	case tokens[0] == "CONSUMER" && len(tokens) >= 3 && tokens[1] == "CREATE",
		len(tokens) == 5 && tokens[0] == "CONSUMER" && tokens[1] == "DURABLE" && tokens[2] == "CREATE":
		g.slowly(r, m, "consumer_create", func() { g.create(r, tokens, m) })
	case len(tokens) == 3 && tokens[0] == "CONSUMER" && (tokens[1] == "NAMES" || tokens[1] == "LIST"):
		g.slowly(r, m, "consumer_"+strings.ToLower(tokens[1]), func() { g.list(r, tokens[1], tokens[2], m) })
	case len(tokens) == 4 && tokens[0] == "CONSUMER" &&
		(tokens[1] == "INFO" || tokens[1] == "DELETE" || tokens[1] == "PAUSE" || tokens[1] == "UNPIN" || tokens[1] == "RESET"):
		subject := fmt.Sprintf("$JS.API.CONSUMER.%s.%s.%s", tokens[1], tokens[2], r.own(tokens[3]))
		g.slowly(r, m, "consumer_"+strings.ToLower(tokens[1]), func() { g.call(r, subject, m, m.Data) })
	case len(tokens) == 5 && tokens[0] == "CONSUMER" && tokens[1] == "MSG" && tokens[2] == "NEXT":
		body, err := boundPull(m.Data)
		if err != nil {
			g.refuse(r, m, "pull", "%v", err)
			return
		}
		g.forward(r, fmt.Sprintf("$JS.API.CONSUMER.MSG.NEXT.%s.%s", tokens[3], r.own(tokens[4])), m, body)
	default:
		r.warn(g.log, "reader called a JetStream API it may not; refused", "api", "$JS.API."+api)
		g.refuse(r, m, kind, "readers may not call $JS.API.%s", api)
	}
}

// slowly runs do, a request the guard answers after calling JetStream
// itself, beside the reader's other requests; at most cap(r.slow) of one
// reader at once.
func (g *guard) slowly(r *guardedReader, m *nats.Msg, kind string, do func()) {
	select {
	case r.slow <- struct{}{}:
	default:
		g.refuse(r, m, kind, "reader %s has too many consumer requests in flight; retry later", r.name)
		return
	}
	go func() {
		defer func() { <-r.slow }()
		do()
	}()
}

// call sends the request to JetStream's API and passes its answer on to
// the reader. nats-server answers API requests from its system account,
// through a response mapping that does not reach the reader's account; the
// guard's own inbox does.
func (g *guard) call(r *guardedReader, subject string, m *nats.Msg, body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := g.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: body, Header: m.Header})
	if err != nil {
		g.refuse(r, m, "api", "JetStream did not answer: %v", err)
		return
	}
	if to := r.answerTo(m); to != "" {
		_ = g.nc.PublishMsg(&nats.Msg{Subject: to, Data: resp.Data, Header: resp.Header})
	}
}

// forward publishes the request on to JetStream with the reader's answer
// subject as its reply, for the requests a stream or consumer serves
// itself in the bridge's account (pulls, acks, direct gets): the answer,
// every message of a pull, goes straight to the reader.
func (g *guard) forward(r *guardedReader, subject string, m *nats.Msg, body []byte) {
	out := &nats.Msg{Subject: subject, Reply: r.answerTo(m), Data: body, Header: m.Header}
	if err := g.nc.PublishMsg(out); err != nil {
		g.log.Warn("reader request not passed on", "subject", subject, "err", err)
	}
}

// apiError is a JetStream API error answer, the form every client reads.
type apiError struct {
	Type  string `json:"type"`
	Error struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// refuse answers m with an error the reader's client shows: a JetStream
// API error for API requests, a 409 status for pulls and acks (which a
// client reads as status messages).
func (g *guard) refuse(r *guardedReader, m *nats.Msg, kind, format string, args ...any) {
	to := r.answerTo(m)
	if to == "" {
		return
	}
	description := "senfenico-bridge: " + fmt.Sprintf(format, args...)
	if kind == "pull" || kind == "ack" {
		hdr := nats.Header{}
		hdr.Set("Status", "409")
		hdr.Set("Description", description)
		_ = g.nc.PublishMsg(&nats.Msg{Subject: to, Header: hdr})
		return
	}
	var e apiError
	e.Type = "io.nats.jetstream.api.v1." + strings.ToLower(kind) + "_response"
	e.Error.Code = 403
	e.Error.ErrCode = errCodeReaderRefused
	e.Error.Description = description
	body, _ := json.Marshal(e)
	_ = g.nc.Publish(to, body)
}

// boundDirectGet refuses a direct get asking for more messages, or more
// subjects, than a pull may.
func boundDirectGet(body []byte) error {
	var req struct {
		Batch     int      `json:"batch"`
		MultiLast []string `json:"multi_last"`
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("direct get request is not JSON: %v", err)
	}
	if req.Batch > MaxRequestBatch {
		return fmt.Errorf("direct get of %d messages, at most %d", req.Batch, MaxRequestBatch)
	}
	if len(req.MultiLast) > MaxFilterSubjects {
		return fmt.Errorf("direct get of %d subjects, at most %d", len(req.MultiLast), MaxFilterSubjects)
	}
	return nil
}

// boundPull checks a pull request's size and gives a pull that would wait
// for ever MaxRequestExpires; the consumer's own limits (set at its
// create) bound the rest.
func boundPull(body []byte) ([]byte, error) {
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" || trimmed[0] != '{' {
		// The old form: a batch size alone, or nothing (one message).
		n := 1
		if trimmed != "" {
			var err error
			if n, err = strconv.Atoi(trimmed); err != nil || n < 1 {
				return nil, fmt.Errorf("pull request %q is neither a batch size nor JSON", trimmed)
			}
		}
		return json.Marshal(map[string]any{"batch": n, "expires": MaxRequestExpires})
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("pull request is not JSON: %v", err)
	}
	var noWait bool
	if raw, ok := req["no_wait"]; ok {
		_ = json.Unmarshal(raw, &noWait)
	}
	var expires int64
	if raw, ok := req["expires"]; ok {
		if err := json.Unmarshal(raw, &expires); err != nil || expires < 0 {
			return nil, fmt.Errorf("pull request expires %s is not a duration in nanoseconds", raw)
		}
	}
	if expires > int64(MaxRequestExpires) {
		return nil, fmt.Errorf("pull request waits %v, at most %v", time.Duration(expires), MaxRequestExpires)
	}
	if expires == 0 && !noWait {
		req["expires"] = json.RawMessage(strconv.FormatInt(int64(MaxRequestExpires), 10))
		return json.Marshal(req)
	}
	return body, nil
}

// create checks and passes on a consumer create of reader r: the consumer
// takes the reader's prefix, must be a pull consumer within the bounds
// (access.go), and counts against the reader's MaxConsumersPerReader
// unless it exists already (an update). tokens is the API subject after
// "$JS.API.": CONSUMER.CREATE.<stream>[.<name>[.<filter>]] or
// CONSUMER.DURABLE.CREATE.<stream>.<durable>.
func (g *guard) create(r *guardedReader, tokens []string, m *nats.Msg) {
	var stream, name, filterToken string
	durableForm := tokens[1] == "DURABLE"
	switch {
	case durableForm:
		stream, name = tokens[3], tokens[4]
	case len(tokens) == 3:
		// An ephemeral consumer the server would name: named here, so that
		// it is the reader's.
		stream, name = tokens[2], nuid.Next()
	default:
		stream, name = tokens[2], tokens[3]
		if len(tokens) > 4 {
			filterToken = strings.Join(tokens[4:], ".")
		}
	}
	owned := r.own(name)
	body, err := boundConsumer(m.Data, owned, durableForm, filterToken != "")
	if err != nil {
		g.refuse(r, m, "consumer_create", "%v", err)
		return
	}

	g.creates.Lock()
	defer g.creates.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held, exists, err := g.consumersOf(ctx, r, stream, owned)
	if err != nil {
		g.refuse(r, m, "consumer_create", "cannot count the reader's consumers: %v", err)
		return
	}
	if !exists && held >= MaxConsumersPerReader {
		r.warn(g.log, "reader at its consumer limit; create refused", "consumers", held)
		g.refuse(r, m, "consumer_create", "reader %s holds %d consumers, the most a reader may; delete one first", r.name, held)
		return
	}
	subject := fmt.Sprintf("$JS.API.CONSUMER.CREATE.%s.%s", stream, owned)
	if durableForm {
		subject = fmt.Sprintf("$JS.API.CONSUMER.DURABLE.CREATE.%s.%s", stream, owned)
	} else if filterToken != "" {
		subject += "." + filterToken
	}
	g.call(r, subject, m, body)
}

// consumersOf counts reader r's consumers over every stream and says
// whether stream already has one named owned.
func (g *guard) consumersOf(ctx context.Context, r *guardedReader, stream, owned string) (held int, exists bool, err error) {
	streams, err := g.pages(ctx, "$JS.API.STREAM.NAMES", "streams")
	if err != nil {
		return 0, false, err
	}
	for _, raw := range streams {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			continue
		}
		names, err := g.pages(ctx, "$JS.API.CONSUMER.NAMES."+s, "consumers")
		if err != nil {
			return 0, false, err
		}
		for _, raw := range names {
			var n string
			if json.Unmarshal(raw, &n) != nil || !strings.HasPrefix(n, r.prefix) {
				continue
			}
			held++
			if s == stream && n == owned {
				exists = true
			}
		}
	}
	return held, exists, nil
}

// pages reads every page of a JetStream list API (names or infos) and
// returns the entries under key.
func (g *guard) pages(ctx context.Context, subject, key string) ([]json.RawMessage, error) {
	var all []json.RawMessage
	for {
		req, _ := json.Marshal(map[string]int{"offset": len(all)})
		resp, err := g.nc.RequestWithContext(ctx, subject, req)
		if err != nil {
			return nil, err
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(resp.Data, &page); err != nil {
			return nil, fmt.Errorf("%s: %v", subject, err)
		}
		if raw, ok := page["error"]; ok {
			var e struct {
				Description string `json:"description"`
			}
			_ = json.Unmarshal(raw, &e)
			return nil, errors.New(e.Description)
		}
		var total int
		var entries []json.RawMessage
		_ = json.Unmarshal(page["total"], &total)
		_ = json.Unmarshal(page[key], &entries)
		all = append(all, entries...)
		if len(entries) == 0 || len(all) >= total {
			return all, nil
		}
	}
}

// list answers CONSUMER.NAMES or CONSUMER.LIST with the reader's own
// consumers only, in one page.
func (g *guard) list(r *guardedReader, what, stream string, m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kind := "consumer_" + strings.ToLower(what)
	entries, err := g.pages(ctx, "$JS.API.CONSUMER."+what+"."+stream, "consumers")
	if err != nil {
		g.refuse(r, m, kind, "%v", err)
		return
	}
	mine := []json.RawMessage{}
	for _, raw := range entries {
		var name string
		if what == "NAMES" {
			_ = json.Unmarshal(raw, &name)
		} else {
			var info struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal(raw, &info)
			name = info.Name
		}
		if strings.HasPrefix(name, r.prefix) {
			mine = append(mine, raw)
		}
	}
	var req struct {
		Offset int `json:"offset"`
	}
	_ = json.Unmarshal(m.Data, &req)
	total := len(mine)
	if req.Offset > 0 {
		mine = mine[min(req.Offset, len(mine)):]
	}
	body, _ := json.Marshal(map[string]any{
		"type": "io.nats.jetstream.api.v1." + kind + "_response", "total": total, "offset": req.Offset, "limit": total,
		"consumers": mine,
	})
	if to := r.answerTo(m); to != "" {
		_ = g.nc.Publish(to, body)
	}
}

// consumerLimits are the bounded fields of a reader's consumer: zero (or
// missing) takes the bound, more is refused.
var consumerLimits = []struct {
	field string
	bound int64
}{
	{"max_waiting", MaxWaitingPulls},
	{"max_batch", MaxRequestBatch},
	{"max_expires", int64(MaxRequestExpires)},
	{"max_ack_pending", MaxAckPending},
}

// boundConsumer checks a consumer create request and returns it with the
// consumer named owned and the bounds filled in.
func boundConsumer(body []byte, owned string, durableForm, subjectFilter bool) ([]byte, error) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil || req == nil {
		return nil, fmt.Errorf("consumer create request is not a JSON object")
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(req["config"], &cfg); err != nil || cfg == nil {
		return nil, fmt.Errorf("consumer create request has no config object")
	}
	str := func(field string) string {
		var s string
		_ = json.Unmarshal(cfg[field], &s)
		return s
	}
	if str("deliver_subject") != "" {
		return nil, fmt.Errorf("readers may create pull consumers only (no deliver_subject)")
	}
	var direct bool
	_ = json.Unmarshal(cfg["direct"], &direct)
	if direct {
		return nil, fmt.Errorf("readers may not create direct consumers")
	}
	var filters []string
	if raw, ok := cfg["filter_subjects"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &filters); err != nil {
			return nil, fmt.Errorf("filter_subjects is not a list of subjects")
		}
	}
	if n := len(filters) + boolInt(str("filter_subject") != "") + boolInt(subjectFilter); n > MaxFilterSubjects {
		return nil, fmt.Errorf("consumer has %d filter subjects, at most %d", n, MaxFilterSubjects)
	}
	for _, lim := range consumerLimits {
		var v int64
		if raw, ok := cfg[lim.field]; ok {
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("%s is not a number", lim.field)
			}
		}
		if v > lim.bound {
			return nil, fmt.Errorf("%s %d is above the readers' bound of %d", lim.field, v, lim.bound)
		}
		if v <= 0 {
			cfg[lim.field] = json.RawMessage(strconv.FormatInt(lim.bound, 10))
		}
	}
	quoted, _ := json.Marshal(owned)
	if durableForm || str("durable_name") != "" {
		cfg["durable_name"] = quoted
	}
	if !durableForm || str("name") != "" {
		cfg["name"] = quoted
	}
	newCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	req["config"] = newCfg
	return json.Marshal(req)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
