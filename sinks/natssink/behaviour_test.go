package natssink_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

func publish(t *testing.T, s sinks.Sink, m *sinks.Message) sinks.Receipt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.Publish(ctx, m)
	if err != nil {
		t.Fatalf("Publish(%s) = %v", m.Subject, err)
	}
	return r
}

func streamInfo(t *testing.T, nc *nats.Conn) *jetstream.StreamInfo {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), natssink.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo()
}

// A new event family, unknown when the stream was made, must be stored, not
// refused for lack of a stream.
func TestNewEventFamilyExtendsStream(t *testing.T) {
	b := startBroker(t)
	cfg := b.config(natssink.ModeJetStream)
	cfg.Subjects = []string{"checkout.>", "senfenico.unroutable"}
	s := newSink(t, cfg)
	tests := []struct {
		name    string
		subject string
		filter  string
	}{
		{name: "two tokens", subject: "refund.created", filter: "refund.>"},
		{name: "same family again", subject: "refund.failed", filter: "refund.>"},
		{name: "single token", subject: "ping", filter: "ping"},
		{name: "family swallows dead-letter subject", subject: "senfenico.audit", filter: "senfenico.>"},
		{name: "already covered", subject: "checkout.success", filter: "checkout.>"},
	}
	nc := b.Client(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := sinktest.NewMessage(tc.subject)
			publish(t, s, m)
			got := fetchStream(t, nc, tc.subject, 1, 5*time.Second)
			if !slices.ContainsFunc(got, func(g *nats.Msg) bool { return g.Header.Get(natssink.HeaderID) == m.ID }) {
				t.Errorf("message on %s not in the stream", tc.subject)
			}
			if subs := streamInfo(t, nc).Config.Subjects; !slices.Contains(subs, tc.filter) {
				t.Errorf("stream subjects %v lack %s", subs, tc.filter)
			}
		})
	}
	subs := streamInfo(t, nc).Config.Subjects
	if slices.Contains(subs, "senfenico.unroutable") {
		t.Errorf("stream subjects %v keep a filter that senfenico.> covers", subs)
	}

	// A second bridge with the original config keeps what the first added.
	newSink(t, cfg)
	after := streamInfo(t, nc).Config.Subjects
	slices.Sort(subs)
	slices.Sort(after)
	if !slices.Equal(subs, after) {
		t.Errorf("a second New changed the stream subjects from %v to %v", subs, after)
	}
}

// An operator-made stream keeps its settings; the sink only adds subjects and
// lengthens a too-short dedup window.
func TestExistingStreamIsExtended(t *testing.T) {
	b := startBroker(t)
	js, err := jetstream.New(b.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: natssink.DefaultStream, Subjects: []string{"ops.>"}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute, MaxMsgs: 1000000,
	})
	if err != nil {
		t.Fatal(err)
	}
	newSink(t, b.config(natssink.ModeJetStream))
	st, err := js.Stream(ctx, natssink.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	sc := st.CachedInfo().Config
	if !slices.Contains(sc.Subjects, "ops.>") || !slices.Contains(sc.Subjects, "checkout.>") {
		t.Errorf("subjects = %v, want ops.> kept and checkout.> added", sc.Subjects)
	}
	if sc.Duplicates != natssink.DefaultDedupWindow {
		t.Errorf("Duplicates = %v, want %v", sc.Duplicates, natssink.DefaultDedupWindow)
	}
	if sc.MaxMsgs != 1000000 {
		t.Errorf("MaxMsgs = %d, want the operator's 1000000 kept", sc.MaxMsgs)
	}
}

func TestStreamCreatedWithDefaults(t *testing.T) {
	b := startBroker(t)
	s := newSink(t, b.config(natssink.ModeJetStream))
	sc := streamInfo(t, b.Client(t)).Config
	if sc.Storage != jetstream.FileStorage || sc.Duplicates != natssink.DefaultDedupWindow || !sc.AllowAtomicPublish {
		t.Errorf("stream storage %v, duplicates %v, atomic batches %v; want file storage, %v and allowed",
			sc.Storage, sc.Duplicates, sc.AllowAtomicPublish, natssink.DefaultDedupWindow)
	}
	if sc.MaxAge != natssink.DefaultMaxAge || sc.MaxBytes != natssink.DefaultMaxBytes || sc.Discard != jetstream.DiscardNew {
		t.Errorf("retention: max age %v, max bytes %d, discard %v; want %v, %d, new",
			sc.MaxAge, sc.MaxBytes, sc.Discard, natssink.DefaultMaxAge, int64(natssink.DefaultMaxBytes))
	}
	if sc.Replicas != natssink.DefaultReplicas {
		t.Errorf("replicas %d, want %d", sc.Replicas, natssink.DefaultReplicas)
	}
	want := natssink.Durability{Stream: natssink.DefaultStream, Managed: true, Storage: "File", Replicas: 1,
		MaxAge: natssink.DefaultMaxAge, MaxBytes: natssink.DefaultMaxBytes, DiscardNew: true}
	if d := s.Durability(); d != want {
		t.Errorf("Durability() = %+v, want %+v", d, want)
	}
}

// A stream the bridge created before it set retention gets the configured
// limits at the next start; one an operator made keeps its own.
func TestManagedStreamGetsRetention(t *testing.T) {
	b := startBroker(t)
	cfg := b.config(natssink.ModeJetStream)
	cfg.MaxAge, cfg.MaxBytes = 2*time.Hour, 1<<20
	js, err := jetstream.New(b.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: natssink.DefaultStream, Subjects: cfg.Subjects, Duplicates: natssink.DefaultDedupWindow,
		Description: "Senfenico webhook events published by senfenico-bridge",
	}); err != nil {
		t.Fatal(err)
	}
	newSink(t, cfg)
	sc := streamInfo(t, b.Client(t)).Config
	if sc.MaxAge != cfg.MaxAge || sc.MaxBytes != cfg.MaxBytes || sc.Discard != jetstream.DiscardNew || !sc.AllowAtomicPublish {
		t.Errorf("max age %v, max bytes %d, discard %v, atomic %v; want %v, %d, new, true",
			sc.MaxAge, sc.MaxBytes, sc.Discard, sc.AllowAtomicPublish, cfg.MaxAge, cfg.MaxBytes)
	}
}

// The headers are the published contract: exactly these, nothing else,
// string attributes percent-encoded as the CloudEvents NATS binding says.
func TestHeadersExactly(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.FixedZone("WAT", 3600))
	tests := []struct {
		name        string
		mode        string
		typ         string
		contentType string
		reason      string
		detail      string
		extra       nats.Header
	}{
		{name: "jetstream routed", mode: natssink.ModeJetStream},
		{name: "core routed", mode: natssink.ModeCore},
		{
			name: "jetstream dead letter", mode: natssink.ModeJetStream, reason: sinks.ReasonUnroutable, detail: "empty token",
			typ: "checkout..succès", extra: nats.Header{
				"ce-type":             {"checkout..succ%C3%A8s"},
				"ce-deadletterreason": {sinks.ReasonUnroutable}, "ce-deadletterdetail": {"empty%20token"},
			},
		},
		{
			name: "dead letter without detail", mode: natssink.ModeCore, reason: sinks.ReasonSchema,
			extra: nats.Header{"ce-deadletterreason": {sinks.ReasonSchema}},
		},
		{
			name: "malformed data", mode: natssink.ModeJetStream, reason: sinks.ReasonMalformedData,
			detail: `"data" string is not JSON`, contentType: sinks.ContentTypeOctetStream,
			extra: nats.Header{
				"ce-deadletterreason": {sinks.ReasonMalformedData}, "ce-deadletterdetail": {"%22data%22%20string%20is%20not%20JSON"},
				"ce-datacontenttype": {"application/octet-stream"}, "content-type": {"application/octet-stream"},
			},
		},
	}
	b := startBroker(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, b.config(tc.mode))
			subject := sinktest.RandomSubject("headers")
			nc := b.Client(t)
			sub, err := nc.SubscribeSync(subject)
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			m := sinktest.NewMessage(subject)
			m.Time, m.DeadLetterReason, m.DeadLetterDetail, m.ContentType = at, tc.reason, tc.detail, tc.contentType
			if tc.typ != "" {
				m.Type = tc.typ
			}
			publish(t, s, m)
			got, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			want := nats.Header{
				"ce-specversion":     {"1.0"},
				"ce-id":              {m.ID},
				"ce-type":            {m.Type},
				"ce-source":          {"senfenico"},
				"ce-time":            {"2026-03-01T11:30:45.123456789Z"},
				"ce-datacontenttype": {"application/json"},
				"content-type":       {"application/json"},
				"Nats-Msg-Id":        {m.ID},
			}
			for k, v := range tc.extra {
				want[k] = v
			}
			if len(got.Header) != len(want) {
				t.Errorf("headers = %v, want exactly %v", got.Header, want)
			}
			for k, v := range want {
				if g := got.Header.Values(k); !slices.Equal(g, v) {
					t.Errorf("header %s = %q, want %q", k, g, v)
				}
			}
			if !bytes.Equal(got.Data, m.Body) {
				t.Errorf("body = %q, want %q", got.Data, m.Body)
			}
			d, err := natssink.Decode(got)
			if err != nil {
				t.Fatal(err)
			}
			if d.Type != m.Type || d.DeadLetterDetail != m.DeadLetterDetail || d.DataContentType() != m.DataContentType() {
				t.Errorf("Decode: type %q, detail %q, content type %q; want %q, %q, %q",
					d.Type, d.DeadLetterDetail, d.DataContentType(), m.Type, m.DeadLetterDetail, m.DataContentType())
			}
		})
	}
}

// No publish may return nil for a message the stream does not hold, even
// when the server goes away in the middle of a burst.
func TestNoFalseSuccessWhenServerDies(t *testing.T) {
	b := startBroker(t)
	s := newSink(t, b.config(natssink.ModeJetStream))
	subject := sinktest.RandomSubject("outage")
	publish(t, s, sinktest.NewMessage(subject))

	const n = 300
	msgs := make([]*sinks.Message, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	var once sync.Once
	for i := range msgs {
		msgs[i] = sinktest.NewMessage(subject)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if i == n/3 {
				once.Do(b.Stop)
			}
			_, errs[i] = s.Publish(ctx, msgs[i])
		})
	}
	wg.Wait()
	once.Do(b.Stop)
	b.StartAgain()

	got := fetchStream(t, b.Client(t), subject, 1, 10*time.Second)
	stored := map[string]bool{}
	for _, m := range got {
		stored[m.Header.Get(natssink.HeaderID)] = true
	}
	failed := 0
	for i, err := range errs {
		switch {
		case err == nil && !stored[msgs[i].ID]:
			t.Errorf("Publish(id %s) = nil, but the stream does not hold it", msgs[i].ID)
		case err != nil && !errors.Is(err, sinks.ErrUnavailable):
			t.Errorf("Publish(id %s) = %v, want an error wrapping sinks.ErrUnavailable", msgs[i].ID, err)
		case err != nil:
			failed++
		}
	}
	t.Logf("%d of %d publishes failed during the outage, %d stored", failed, n, len(got))
}

func TestPublishWhileDisconnectedFailsFast(t *testing.T) {
	for _, mode := range []string{natssink.ModeJetStream, natssink.ModeCore} {
		t.Run(mode, func(t *testing.T) {
			b := startBroker(t)
			s := newSink(t, b.config(mode))
			b.Stop()
			defer b.StartAgain()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// The sink notices the closed socket asynchronously.
			for s.Connected() && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			_, err := s.Publish(ctx, sinktest.NewMessage("x.y"))
			if !errors.Is(err, sinks.ErrUnavailable) {
				t.Fatalf("Publish while disconnected = %v, want sinks.ErrUnavailable", err)
			}
			// Failing fast means failing on the connection's state, not
			// by waiting for the caller's deadline.
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				t.Errorf("Publish while disconnected waited for its deadline: %v", err)
			}
		})
	}
}

func startAuthServer(t *testing.T, opts *server.Options) string {
	t.Helper()
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir, opts.NoSigs, opts.NoLog = "127.0.0.1", -1, true, t.TempDir(), true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns.ClientURL()
}

func TestAuth(t *testing.T) {
	userURL := startAuthServer(t, &server.Options{Username: "bridge", Password: "s3cret-pass"})
	tokenURL := startAuthServer(t, &server.Options{Authorization: "t0ken-value"})
	tests := []struct {
		name    string
		cfg     natssink.Config
		wantErr bool
	}{
		{name: "user and password", cfg: natssink.Config{URL: userURL, User: "bridge", Password: "s3cret-pass"}},
		{name: "wrong password", cfg: natssink.Config{URL: userURL, User: "bridge", Password: "nope"}, wantErr: true},
		{name: "no credentials", cfg: natssink.Config{URL: userURL}, wantErr: true},
		{name: "token", cfg: natssink.Config{URL: tokenURL, Token: "t0ken-value"}},
		{name: "wrong token", cfg: natssink.Config{URL: tokenURL, Token: "other"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := natssink.New(ctx, tc.cfg)
			if tc.wantErr {
				if err == nil {
					_ = s.Close(ctx)
					t.Fatal("New with bad credentials = nil error")
				}
				if !errors.Is(err, sinks.ErrUnavailable) {
					t.Errorf("New = %v, want sinks.ErrUnavailable", err)
				}
				if errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("New retried an authorization failure until its deadline: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New = %v", err)
			}
			defer s.Close(ctx)
			if r := publish(t, s, sinktest.NewMessage(sinktest.RandomSubject("auth"))); r.Duplicate {
				t.Error("fresh message reported duplicate")
			}
		})
	}
}

func TestNewGivesUpWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	// Nothing listens on port 1.
	_, err := natssink.New(ctx, natssink.Config{URL: "nats://127.0.0.1:1", ReconnectWait: 100 * time.Millisecond})
	if !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("New without a server = %v, want sinks.ErrUnavailable", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name      string
		cfg       natssink.Config
		wantField string
	}{
		{name: "minimal", cfg: natssink.Config{URL: "nats://x:4222"}},
		{name: "core", cfg: natssink.Config{URL: "nats://x:4222", Mode: natssink.ModeCore}},
		{name: "in-process option instead of URL", cfg: natssink.Config{Options: []nats.Option{nats.Name("x")}}},
		{name: "no URL", cfg: natssink.Config{}, wantField: "URL"},
		{name: "bad mode", cfg: natssink.Config{URL: "u", Mode: "kafka"}, wantField: "Mode"},
		{name: "bad stream", cfg: natssink.Config{URL: "u", Stream: "a.b"}, wantField: "Stream"},
		{name: "full wildcard", cfg: natssink.Config{URL: "u", Subjects: []string{">"}}, wantField: "Subjects"},
		{name: "leading star", cfg: natssink.Config{URL: "u", Subjects: []string{"*.>"}}, wantField: "Subjects"},
		{name: "inbox", cfg: natssink.Config{URL: "u", Subjects: []string{"_INBOX.>"}}, wantField: "Subjects"},
		{name: "JetStream API", cfg: natssink.Config{URL: "u", Subjects: []string{"$JS.API.>"}}, wantField: "Subjects"},
		{name: "empty token", cfg: natssink.Config{URL: "u", Subjects: []string{"a..b"}}, wantField: "Subjects"},
		{name: "window over max age", cfg: natssink.Config{URL: "u", MaxAge: time.Hour}, wantField: "DedupWindow"},
		{name: "no size limit", cfg: natssink.Config{URL: "u", MaxBytes: -1}},
		{name: "negative max bytes", cfg: natssink.Config{URL: "u", MaxBytes: -2}, wantField: "MaxBytes"},
		{name: "negative max families", cfg: natssink.Config{URL: "u", MaxFamilies: -1}, wantField: "MaxFamilies"},
		{name: "six replicas", cfg: natssink.Config{URL: "u", Replicas: 6}, wantField: "Replicas"},
		{name: "negative publish timeout", cfg: natssink.Config{URL: "u", PublishTimeout: -time.Second}, wantField: "PublishTimeout"},
		{name: "two auth methods", cfg: natssink.Config{URL: "u", Token: "t", User: "u", Password: "p"}, wantField: "Token"},
		{name: "user without password", cfg: natssink.Config{URL: "u", User: "u"}, wantField: "Password"},
		{name: "cert without key", cfg: natssink.Config{URL: "u", CertFile: "c"}, wantField: "KeyFile"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			var fe *sinks.FieldError
			if !errors.Is(err, natssink.ErrConfig) || !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("Validate() = %v, want ErrConfig and a FieldError on %s", err, tc.wantField)
			}
		})
	}
}

func TestStreamSubjects(t *testing.T) {
	tests := []struct {
		name, prefix, deadLetter string
		want                     []string
	}{
		{name: "empty prefix", deadLetter: "senfenico.unroutable",
			want: []string{"checkout.>", "charge.>", "settlement.>", "transfer.>", "senfenico.unroutable"}},
		{name: "dotted prefix covers dead letters", prefix: "senfenico.", deadLetter: "senfenico.unroutable",
			want: []string{"senfenico.>"}},
		{name: "dotted prefix, other dead letters", prefix: "pay.", deadLetter: "dlq.senfenico",
			want: []string{"pay.>", "dlq.senfenico"}},
		{name: "prefix inside the first token", prefix: "sf-", deadLetter: "senfenico.unroutable",
			want: []string{"sf-checkout.>", "sf-charge.>", "sf-settlement.>", "sf-transfer.>", "senfenico.unroutable"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := natssink.StreamSubjects(tc.prefix, tc.deadLetter); !slices.Equal(got, tc.want) {
				t.Errorf("StreamSubjects(%q, %q) = %v, want %v", tc.prefix, tc.deadLetter, got, tc.want)
			}
		})
	}
}

func TestConfigRedactsSecrets(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	cfg := natssink.Config{URL: "nats://bridge:urlpass@h:4222", User: "bridge", Password: "hunter2pass", Token: "tok3n-secret"}
	log.Info("config", "nats", cfg)
	log.Info("config", "nats", cfg.String())
	for _, secret := range []string{"hunter2pass", "tok3n-secret", "urlpass"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log output contains the secret %q: %s", secret, buf.String())
		}
	}
}

// Connection state changes are logged, with errors under "err".
func TestLogsConnectionState(t *testing.T) {
	b := startBroker(t)
	var mu sync.Mutex
	var buf bytes.Buffer
	cfg := b.config(natssink.ModeCore)
	cfg.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))
	s := newSink(t, cfg)
	b.Stop()
	b.StartAgain()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, err := s.Publish(ctx, sinktest.NewMessage("x.y")); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("no reconnect: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{`"msg":"nats disconnected"`, `"msg":"nats reconnected"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("logs lack %s: %s", want, buf.String())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
