package bridge

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

// discardExporter takes every batch and drops it: what the request path
// pays for a span is measured without the network behind a collector.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkHandlerTracing is BenchmarkHandler with traces off and on (the
// SDK with its batch span processor, as the binary builds it, feeding an
// exporter that discards), for a request without a traceparent and one
// with a caller's. Compare with
//
//	go test ./bridge -run '^$' -bench HandlerTracing -count 6 > t.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /tracing t.txt
func BenchmarkHandlerTracing(b *testing.B) {
	var body []byte
	for _, v := range vectors.Load().Vectors {
		if v.Name == "charge.success with data as a JSON string" {
			body = []byte(v.Body)
		}
	}
	sig := webhook.Sign(body, testKey)
	for _, tracing := range []string{"off", "on", "on-unsampled"} {
		for _, caller := range []string{"none", "traceparent"} {
			b.Run("tracing="+tracing+"/caller="+caller, func(b *testing.B) {
				cfg := Config{Keys: []string{testKey}}
				if tracing != "off" {
					sampler := sdktrace.ParentBased(sdktrace.AlwaysSample())
					if tracing == "on-unsampled" {
						sampler = sdktrace.NeverSample()
					}
					tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}), sdktrace.WithSampler(sampler))
					b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
					cfg.TracerProvider = tp
					cfg.Brokers = []Broker{{System: "nats", Address: "127.0.0.1", Port: 4222}}
				}
				s, err := New(cfg, memsink.New(memsink.WithDiscard()), nil)
				if err != nil {
					b.Fatal(err)
				}
				h := s.Handler()
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, bytes.NewReader(body))
					req.Header.Set(webhook.HeaderName, sig)
					if caller == "traceparent" {
						req.Header["Traceparent"] = []string{callerTraceParent}
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d", rec.Code)
					}
				}
			})
		}
	}
}
