package replay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/cmd/senfenico-bridge/internal/replay"
	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// One Kafka broker for the package, or the one KAFKA_BROKERS names: a
// broker that cannot be had fails the tests.
func TestMain(m *testing.M) { os.Exit(kafkatest.Main(m)) }

const testKey = "replay-test-key"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// senfenicoBody is a notification as Senfenico posts it: data a JSON
// string holding the object.
func senfenicoBody(t *testing.T, event string, data map[string]any) []byte {
	t.Helper()
	inner, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{"event": event, "data": string(inner)})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// webhookBridge is a real bridge.Server publishing to sink, driven through
// its handler.
type webhookBridge struct {
	t       *testing.T
	handler http.Handler
}

func newBridge(t *testing.T, sink sinks.Sink, prefix, deadLetters string, families ...string) *webhookBridge {
	t.Helper()
	srv, err := bridge.New(bridge.Config{Keys: []string{testKey}, TopicPrefix: prefix, DeadLetterSubject: deadLetters, Families: families}, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &webhookBridge{t: t, handler: srv.Handler()}
}

// post sends a signed notification and returns the ce-id and subject the
// bridge answered.
func (b *webhookBridge) post(body []byte) (id, subject string) {
	b.t.Helper()
	req := httptest.NewRequest(http.MethodPost, bridge.DefaultWebhookPath, bytes.NewReader(body))
	req.Header.Set(webhook.HeaderName, webhook.Sign(body, testKey))
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	var answer struct {
		ID, Subject string
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &answer) != nil {
		b.t.Fatalf("the bridge answered %d %s", rec.Code, rec.Body)
	}
	return answer.ID, answer.Subject
}

// newRouter routes as a bridge with these settings does.
func newRouter(t *testing.T, prefix, deadLetters string, families ...string) *replay.BridgeRouter {
	t.Helper()
	r, err := replay.NewBridgeRouter(bridge.Config{TopicPrefix: prefix, DeadLetterSubject: deadLetters, Families: families})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// line is one parsed line of a run's output.
type line struct {
	id, from, to, result, reason string
}

// parseLines reads a run's output: the lines before the summary.
func parseLines(t *testing.T, out string) (lines []line, summary string) {
	t.Helper()
	all := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	summary = all[len(all)-1]
	for _, l := range all[:len(all)-1] {
		f := strings.SplitN(l, " ", 6)
		if len(f) < 5 || f[2] != "->" {
			t.Fatalf("line %q is not <ce-id> <from> -> <to> <result> [reason]", l)
		}
		ln := line{id: f[0], from: f[1], to: f[3], result: f[4]}
		if len(f) == 6 {
			ln.reason = f[5]
		}
		lines = append(lines, ln)
	}
	return lines, summary
}

func ids(lines []line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.id
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// runReplay runs cfg with Out captured.
func runReplay(t *testing.T, cfg replay.Config) (replay.Summary, []line, string, error) {
	t.Helper()
	var out bytes.Buffer
	cfg.Out = &out
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := replay.Run(ctx, cfg)
	lines, summary := parseLines(t, out.String())
	if summary != sum.String() {
		t.Fatalf("last line %q, want the summary %q", summary, sum.String())
	}
	return sum, lines, out.String(), err
}

// noPublish is the Publisher of a dry run: any publish fails the test.
type noPublish struct{ t *testing.T }

func (p noPublish) PublishReplay(_ context.Context, msg *sinks.Message, _, _ string) (sinks.Receipt, error) {
	p.t.Errorf("a dry run published %s to %s", msg.ID, msg.Subject)
	return sinks.Receipt{}, nil
}

// slowPublisher delays every publish, so that a run lasts long enough to
// show its progress.
type slowPublisher struct {
	replay.Publisher
	delay time.Duration
}

func (p slowPublisher) PublishReplay(ctx context.Context, msg *sinks.Message, run, from string) (sinks.Receipt, error) {
	time.Sleep(p.delay)
	return p.Publisher.PublishReplay(ctx, msg, run, from)
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
