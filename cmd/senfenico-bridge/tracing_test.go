package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes each
// ExportTraceServiceRequest (protobuf, as the exporter sends it) and keeps
// its spans with their service.name.
type otlpReceiver struct {
	url string

	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
	requests int
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("OTLP receiver: %s %s (%s)", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
			w.WriteHeader(http.StatusNotFound)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(req.Body)
			if err != nil {
				t.Errorf("OTLP receiver: %v", err)
				return
			}
			body = gz
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			t.Errorf("OTLP receiver: %v", err)
			return
		}
		var export coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &export); err != nil {
			t.Errorf("OTLP receiver: not an ExportTraceServiceRequest: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.requests++
		for _, rs := range export.ResourceSpans {
			service := stringAttr(rs.GetResource().GetAttributes(), "service.name")
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					r.spans = append(r.spans, s)
					r.services = append(r.services, service)
				}
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// span returns the first span kind of trace traceID (hex), waiting up to
// timeout for it, and the service.name of its resource.
func (r *otlpReceiver) span(traceID string, kind tracepb.Span_SpanKind, timeout time.Duration) (*tracepb.Span, string) {
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		for i, s := range r.spans {
			if hex.EncodeToString(s.TraceId) == traceID && s.Kind == kind {
				r.mu.Unlock()
				return s, r.services[i]
			}
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			return nil, ""
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *otlpReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spans)
}

func stringAttr(attrs []*commonpb.KeyValue, key string) string {
	for _, kv := range attrs {
		if kv.Key == key {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

func intAttr(attrs []*commonpb.KeyValue, key string) (int64, bool) {
	for _, kv := range attrs {
		if kv.Key == key {
			return kv.Value.GetIntValue(), true
		}
	}
	return 0, false
}

// TestTracesEndToEnd runs the binary's serve with the embedded NATS server
// and OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP receiver: the
// webhook's spans arrive there with the messaging attributes, and the
// event a NATS subscriber reads carries a traceparent naming the producer
// span, in the caller's trace when the request had one, in the bridge's
// new trace when it had none. The batch delay is long, so the spans arrive
// only because the shutdown flushes them.
func TestTracesEndToEnd(t *testing.T) {
	receiver := newOTLPReceiver(t)
	v := vectors.Load().Vectors[0]
	dataDir := t.TempDir()
	env := map[string]string{
		"SENFENICO_WEBHOOK_KEYS":      v.Key,
		"LISTEN_ADDR":                 "127.0.0.1:0",
		"NATS_EMBEDDED_LISTEN":        "127.0.0.1:0",
		"DATA_DIR":                    dataDir,
		"LOG_FORMAT":                  "json",
		"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
		"OTEL_EXPORTER_OTLP_HEADERS":  "authorization=Bearer%20s3cret-collector-token",
		"OTEL_SERVICE_NAME":           "bridge-under-test",
		"OTEL_BSP_SCHEDULE_DELAY":     "600000",
	}
	base, natsURL, logs, stop := startServe(t, env)
	if line := waitForLine(logs, `"msg":"traces exported over OTLP"`); !strings.Contains(line, `"endpoint":"`+receiver.url+`/v1/traces"`) {
		t.Fatalf("no start line says where traces go:\n%s", logs.String())
	}
	readerURL, _, _, err := natsembed.ReadReaderFile(dataDir, natsembed.DefaultReader)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(readerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(v.Subject)
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	const callerTraceID, callerSpanID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	send := func(body, traceParent string) *nats.Msg {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/senfenico", strings.NewReader(body))
		req.Header.Set(webhook.HeaderName, webhook.Sign([]byte(body), v.Key))
		if traceParent != "" {
			req.Header.Set("traceparent", traceParent)
			req.Header.Set("tracestate", "vendor=abc")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no event on the embedded server: %v", err)
		}
		return msg
	}
	withCaller := send(v.Body, "00-"+callerTraceID+"-"+callerSpanID+"-01")
	// Another event (a resend would be a duplicate the subscriber does not
	// see), without trace context.
	fresh := send(`{"event": "`+v.Event+`", "data": {"reference": "trace-e2e-2", "amount": 100}}`, "")
	if n := receiver.count(); n != 0 {
		t.Fatalf("%d spans exported before the batch delay or the shutdown", n)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
	if strings.Contains(logs.String(), "s3cret-collector-token") {
		t.Fatal("the collector's token reached the logs")
	}

	check := func(t *testing.T, msg *nats.Msg, wantTraceID string) {
		t.Helper()
		tp := msg.Header.Get("traceparent")
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[0] != "00" {
			t.Fatalf("message header traceparent %q (headers %v)", tp, msg.Header)
		}
		traceID, spanID := parts[1], parts[2]
		if wantTraceID != "" && traceID != wantTraceID {
			t.Fatalf("message trace id %s, want the caller's %s", traceID, wantTraceID)
		}
		producer, service := receiver.span(traceID, tracepb.Span_SPAN_KIND_PRODUCER, 5*time.Second)
		if producer == nil {
			t.Fatalf("no producer span of trace %s reached the receiver", traceID)
		}
		server, _ := receiver.span(traceID, tracepb.Span_SPAN_KIND_SERVER, time.Second)
		if server == nil {
			t.Fatalf("no server span of trace %s", traceID)
		}
		if service != "bridge-under-test" {
			t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", service)
		}
		if hex.EncodeToString(producer.SpanId) != spanID {
			t.Errorf("the message names span %s, the producer span is %s", spanID, hex.EncodeToString(producer.SpanId))
		}
		if !bytes.Equal(producer.ParentSpanId, server.SpanId) {
			t.Errorf("producer span's parent %x, want the server span %x", producer.ParentSpanId, server.SpanId)
		}
		if wantTraceID != "" && hex.EncodeToString(server.ParentSpanId) != callerSpanID {
			t.Errorf("server span's parent %x, want the caller's %s", server.ParentSpanId, callerSpanID)
		}
		if wantTraceID == "" && len(server.ParentSpanId) != 0 {
			t.Errorf("server span has a parent %x for a request without traceparent", server.ParentSpanId)
		}
		if producer.Name != "publish "+msg.Subject {
			t.Errorf("producer span %q", producer.Name)
		}
		for key, want := range map[string]string{
			"messaging.system":           "nats",
			"messaging.operation.type":   "send",
			"messaging.operation.name":   "publish",
			"messaging.destination.name": msg.Subject,
			"messaging.message.id":       msg.Header.Get("ce-id"),
			"server.address":             "127.0.0.1",
		} {
			if got := stringAttr(producer.Attributes, key); got != want {
				t.Errorf("producer span %s = %q, want %q", key, got, want)
			}
		}
		if port, ok := intAttr(producer.Attributes, "server.port"); !ok || port == 0 || !strings.HasSuffix(natsURL, ":"+itoa(port)) {
			t.Errorf("producer span server.port %d, the embedded server is %s", port, natsURL)
		}
		if got, _ := intAttr(server.Attributes, "http.response.status_code"); got != 200 {
			t.Errorf("server span http.response.status_code %d", got)
		}
		if producer.StartTimeUnixNano < server.StartTimeUnixNano || producer.EndTimeUnixNano > server.EndTimeUnixNano {
			t.Error("the producer span is not within the server span")
		}
	}
	t.Run("request with a traceparent", func(t *testing.T) {
		check(t, withCaller, callerTraceID)
		if got := withCaller.Header.Get("tracestate"); got != "vendor=abc" {
			t.Errorf("tracestate %q, want the caller's", got)
		}
	})
	t.Run("request without one", func(t *testing.T) {
		check(t, fresh, "")
		if got := fresh.Header.Get("tracestate"); got != "" {
			t.Errorf("tracestate %q for a request without one", got)
		}
	})
}

// waitForLine returns the first log line holding substr, waiting a few
// seconds for it; "" if none came.
func waitForLine(logs interface{ String() string }, substr string) string {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, substr) {
				return line
			}
		}
	}
	return ""
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestTracesOffByDefault: without OTEL_* variables nothing is exported and
// the start says so, yet the caller's traceparent reaches the message.
func TestTracesOffByDefault(t *testing.T) {
	v := vectors.Load().Vectors[0]
	dataDir := t.TempDir()
	base, _, logs, stop := startServe(t, map[string]string{
		"SENFENICO_WEBHOOK_KEYS": v.Key,
		"LISTEN_ADDR":            "127.0.0.1:0",
		"NATS_EMBEDDED_LISTEN":   "127.0.0.1:0",
		"DATA_DIR":               dataDir,
		"LOG_FORMAT":             "json",
	})
	if waitForLine(logs, `"msg":"traces off; a request's W3C traceparent still passes to its message"`) == "" {
		t.Fatalf("no start line says traces are off:\n%s", logs.String())
	}
	readerURL, _, _, err := natsembed.ReadReaderFile(dataDir, natsembed.DefaultReader)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(readerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, _ := nc.SubscribeSync(v.Subject)
	nc.Flush()
	const traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/senfenico", strings.NewReader(v.Body))
	req.Header.Set(webhook.HeaderName, *v.Header)
	req.Header.Set("traceparent", traceParent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("traceparent"); got != traceParent {
		t.Fatalf("traceparent %q, want the request's %q", got, traceParent)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}

// TestTracingConfigErrorsNameTheVariable: a value the bridge cannot use
// stops the start with one line naming the variable, exit status 2.
func TestTracingConfigErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		variable string
	}{
		{"disabled not a boolean", map[string]string{"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED"},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"},
		{"contradicting exporters", map[string]string{"OTEL_TRACES_EXPORTER": "otlp,none"}, "OTEL_TRACES_EXPORTER"},
		{"unknown protocol", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/xml"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"unknown traces protocol", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{"endpoint without scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"traces endpoint not a URL", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://[::1"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{"endpoint port not a number", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:http"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"headers without =", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "api-key"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{"traces headers bad escape", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "k=%zz"}, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"},
		{"timeout not milliseconds", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{"unknown compression", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION"},
		{"unknown sampler", map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER"},
		{"ratio above one", map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"},
		{"resource attribute without =", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment"}, "OTEL_RESOURCE_ATTRIBUTES"},
		{"batch delay not a number", map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "5s"}, "OTEL_BSP_SCHEDULE_DELAY"},
		{"zero queue", map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"SENFENICO_WEBHOOK_KEYS": "k"}
			for k, v := range tc.env {
				env[k] = v
			}
			wantConfigError(t, env, tc.variable)
		})
	}
}

func TestLoadTracing(t *testing.T) {
	tests := []struct {
		name         string
		env          map[string]string
		enabled      bool
		endpoint     string
		protocol     string
		serviceName  string
		samplerMatch string
	}{
		{name: "nothing set", env: nil},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			enabled: true, endpoint: "http://collector:4318/v1/traces", protocol: protocolHTTPProtobuf},
		{name: "endpoint with a path", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example/prefix/"},
			enabled: true, endpoint: "https://otel.example/prefix/v1/traces", protocol: protocolHTTPProtobuf},
		{name: "traces endpoint as it is", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/custom"},
			enabled: true, endpoint: "http://collector:4318/custom", protocol: protocolHTTPProtobuf},
		{name: "grpc endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			enabled: true, endpoint: "http://collector:4317", protocol: protocolGRPC},
		{name: "traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
			enabled: true, endpoint: "http://localhost:4318/v1/traces", protocol: protocolHTTPJSON},
		{name: "exporter otlp, default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"},
			enabled: true, endpoint: "http://localhost:4318/v1/traces", protocol: protocolHTTPProtobuf},
		{name: "exporter otlp, grpc default", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			enabled: true, endpoint: "http://localhost:4317", protocol: protocolGRPC},
		{name: "exporter none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}},
		{name: "SDK disabled", env: map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}},
		{name: "service name from resource attributes", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_RESOURCE_ATTRIBUTES": "service.name=payments-bridge,deployment.environment=prod"},
			enabled: true, endpoint: "http://localhost:4318/v1/traces", protocol: protocolHTTPProtobuf, serviceName: "payments-bridge"},
		{name: "OTEL_SERVICE_NAME wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SERVICE_NAME": "svc", "OTEL_RESOURCE_ATTRIBUTES": "service.name=other"},
			enabled: true, endpoint: "http://localhost:4318/v1/traces", protocol: protocolHTTPProtobuf, serviceName: "svc"},
		{name: "ratio sampler", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			enabled: true, endpoint: "http://localhost:4318/v1/traces", protocol: protocolHTTPProtobuf, samplerMatch: "TraceIDRatioBased{0.25}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadTracing(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.enabled != tc.enabled {
				t.Fatalf("enabled %v (off: %s), want %v", c.enabled, c.off, tc.enabled)
			}
			if !tc.enabled {
				if c.off == "" {
					t.Error("off without a reason for the log")
				}
				return
			}
			if c.endpoint != tc.endpoint || c.protocol != tc.protocol {
				t.Errorf("endpoint %s over %s, want %s over %s", c.endpoint, c.protocol, tc.endpoint, tc.protocol)
			}
			want := tc.serviceName
			if want == "" {
				want = defaultServiceName
			}
			if c.serviceName != want {
				t.Errorf("service.name %q, want %q", c.serviceName, want)
			}
			if tc.samplerMatch != "" && !strings.Contains(c.samplerName, tc.samplerMatch) {
				t.Errorf("sampler %s, want one with %s", c.samplerName, tc.samplerMatch)
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
	}{
		{"nats://user:pa@ss@nats.internal:4222", "nats.internal", 4222},
		{"tls://127.0.0.1:4443/", "127.0.0.1", 4443},
		{"kafka-0:9092", "kafka-0", 9092},
		{"[::1]:9092", "::1", 9092},
		{"broker", "broker", 0},
	} {
		if host, port := hostPort(tc.in); host != tc.host || port != tc.port {
			t.Errorf("hostPort(%q) = %q, %d; want %q, %d", tc.in, host, port, tc.host, tc.port)
		}
	}
}

// grpcReceiver is an OTLP/gRPC trace receiver that counts spans and keeps
// the authorization header it was sent.
type grpcReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans int
	auth  []string
}

func (g *grpcReceiver) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.auth = append(g.auth, md.Get("authorization")...)
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			g.spans += len(ss.Spans)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestExporterProtocols: each OTEL_EXPORTER_OTLP_PROTOCOL reaches a
// receiver of that protocol, with OTEL_EXPORTER_OTLP_HEADERS, and the
// shutdown flushes what was queued.
func TestExporterProtocols(t *testing.T) {
	// HTTP: the receiver checks the encoding the protocol implies.
	var mu sync.Mutex
	got := map[string]int{}
	httpReceiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get("Content-Type")+" "+r.Header.Get("Content-Encoding")+" "+r.Header.Get("Authorization")]++
		mu.Unlock()
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		if r.Header.Get("Content-Type") == "application/json" {
			w.Write([]byte("{}"))
		}
	}))
	defer httpReceiver.Close()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcSrv := grpc.NewServer()
	g := &grpcReceiver{}
	coltracepb.RegisterTraceServiceServer(grpcSrv, g)
	go grpcSrv.Serve(lis)
	defer grpcSrv.Stop()

	tests := []struct {
		name string
		env  map[string]string
		want func() bool
	}{
		{"http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": httpReceiver.URL},
			func() bool { return got["application/x-protobuf  Bearer t0ken"] == 1 }},
		{"http/protobuf, gzip", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": httpReceiver.URL, "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
			func() bool { return got["application/x-protobuf gzip Bearer t0ken"] == 1 }},
		{"http/json", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": httpReceiver.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			func() bool { return got["application/json  Bearer t0ken"] == 1 }},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://" + lis.Addr().String(), "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			func() bool {
				g.mu.Lock()
				defer g.mu.Unlock()
				return g.spans == 1 && len(g.auth) == 1 && g.auth[0] == "Bearer t0ken"
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["OTEL_EXPORTER_OTLP_HEADERS"] = "Authorization=Bearer%20t0ken"
			tc.env["OTEL_BSP_SCHEDULE_DELAY"] = "600000"
			c, err := loadTracing(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			tr, err := startTraces(context.Background(), c, logger)
			if err != nil {
				t.Fatal(err)
			}
			_, span := tr.provider.Tracer("test").Start(context.Background(), "one")
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tr.shutdown(ctx, logger)
			mu.Lock()
			ok := tc.want()
			seen := fmt.Sprint(got)
			mu.Unlock()
			if !ok {
				t.Fatalf("the receiver did not get the span as %s (HTTP requests %s); log:\n%s", tc.name, seen, logs.String())
			}
		})
	}
}
