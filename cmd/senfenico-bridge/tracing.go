package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
)

// Traces are configured by the standard OpenTelemetry variables, read here
// from the same environment as the rest (so tests pass their own), and
// passed to the SDK as options. They are off unless an OTLP endpoint is
// named or OTEL_TRACES_EXPORTER=otlp: unlike the SDK's own default, a
// bridge started without them sends nothing to a collector nobody runs.

// otelEnv is the OpenTelemetry part of the environment: every variable the
// bridge reads itself. The SDK reads a few more (span limits,
// OTEL_EXPORTER_OTLP_CERTIFICATE and the client certificate) from the
// process environment. Strings, checked by check, so that a bad value is
// refused with the variable's name and a reason.
type otelEnv struct {
	SDKDisabled        string `env:"OTEL_SDK_DISABLED"`
	TracesExporter     string `env:"OTEL_TRACES_EXPORTER"`
	ServiceName        string `env:"OTEL_SERVICE_NAME"`
	ResourceAttributes string `env:"OTEL_RESOURCE_ATTRIBUTES"`
	Endpoint           string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	TracesEndpoint     string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`
	Protocol           string `env:"OTEL_EXPORTER_OTLP_PROTOCOL"`
	TracesProtocol     string `env:"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"`
	Headers            string `env:"OTEL_EXPORTER_OTLP_HEADERS"`
	TracesHeaders      string `env:"OTEL_EXPORTER_OTLP_TRACES_HEADERS"`
	Timeout            string `env:"OTEL_EXPORTER_OTLP_TIMEOUT"`
	TracesTimeout      string `env:"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"`
	Compression        string `env:"OTEL_EXPORTER_OTLP_COMPRESSION"`
	TracesCompression  string `env:"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"`
	Sampler            string `env:"OTEL_TRACES_SAMPLER"`
	SamplerArg         string `env:"OTEL_TRACES_SAMPLER_ARG"`
	BSPScheduleDelay   string `env:"OTEL_BSP_SCHEDULE_DELAY"`
	BSPExportTimeout   string `env:"OTEL_BSP_EXPORT_TIMEOUT"`
	BSPMaxQueueSize    string `env:"OTEL_BSP_MAX_QUEUE_SIZE"`
	BSPMaxExportBatch  string `env:"OTEL_BSP_MAX_EXPORT_BATCH_SIZE"`
}

// defaultServiceName is service.name unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES says otherwise.
const defaultServiceName = "senfenico-bridge"

// OTLP protocols (OTEL_EXPORTER_OTLP_PROTOCOL).
const (
	protocolGRPC         = "grpc"
	protocolHTTPProtobuf = "http/protobuf"
	protocolHTTPJSON     = "http/json"
)

// tracingConfig is what the OTEL_* variables decide.
type tracingConfig struct {
	// enabled is false when traces are off; off says why, for the log.
	enabled bool
	off     string

	protocol string
	// endpoint is the URL the exporter posts to (HTTP: with its path;
	// gRPC: scheme, host and port) and endpointVariable the variable it
	// came from, or "" for the default.
	endpoint, endpointVariable string
	headers                    map[string]string
	timeout                    time.Duration
	gzip                       bool
	sampler                    sdktrace.Sampler
	samplerName                string
	resource                   []attribute.KeyValue
	serviceName                string
	batch                      []sdktrace.BatchSpanProcessorOption
}

// secrets are the values no log line may hold: the exporter's headers
// carry API keys.
func (c tracingConfig) secrets() []string {
	var out []string
	for _, v := range c.headers {
		if len(v) >= 4 {
			out = append(out, v)
		}
	}
	return out
}

// loadTracing reads the OTEL_* variables of environ. It returns a
// *configError naming the variable for a value it cannot use.
func loadTracing(environ map[string]string) (tracingConfig, error) {
	var e otelEnv
	if err := env.ParseWithOptions(&e, env.Options{Environment: environ}); err != nil {
		return tracingConfig{}, &configError{"OTEL_*", err.Error()}
	}
	return e.check()
}

func (e otelEnv) check() (tracingConfig, error) {
	var c tracingConfig
	disabled, err := parseOTelBool(e.SDKDisabled)
	if err != nil {
		return c, &configError{"OTEL_SDK_DISABLED", err.Error()}
	}
	exporter := ""
	for name := range strings.SplitSeq(e.TracesExporter, ",") {
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case "":
		case "otlp", "none":
			if exporter != "" && exporter != name {
				return c, &configError{"OTEL_TRACES_EXPORTER", "otlp and none contradict each other"}
			}
			exporter = name
		default:
			return c, &configError{"OTEL_TRACES_EXPORTER", fmt.Sprintf("%q is not an exporter the bridge has: use otlp or none", name)}
		}
	}

	c.protocol = strings.ToLower(firstSet(e.TracesProtocol, e.Protocol, protocolHTTPProtobuf))
	protocolVariable := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if e.TracesProtocol == "" {
		protocolVariable = "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	switch c.protocol {
	case protocolGRPC, protocolHTTPProtobuf, protocolHTTPJSON:
	default:
		return c, &configError{protocolVariable, fmt.Sprintf("%q: use http/protobuf, http/json or grpc", c.protocol)}
	}
	if err := c.setEndpoint(e); err != nil {
		return c, err
	}
	if c.headers, err = parseOTelList(firstSet(e.TracesHeaders, e.Headers, "")); err != nil {
		return c, &configError{pick("OTEL_EXPORTER_OTLP_TRACES_HEADERS", e.TracesHeaders, "OTEL_EXPORTER_OTLP_HEADERS"), err.Error()}
	}
	if t := firstSet(e.TracesTimeout, e.Timeout, ""); t != "" {
		ms, err := strconv.ParseUint(t, 10, 31)
		if err != nil || ms == 0 {
			return c, &configError{pick("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", e.TracesTimeout, "OTEL_EXPORTER_OTLP_TIMEOUT"), fmt.Sprintf("%q is not a number of milliseconds greater than zero", t)}
		}
		c.timeout = time.Duration(ms) * time.Millisecond
	}
	switch compression := strings.ToLower(firstSet(e.TracesCompression, e.Compression, "")); compression {
	case "", "none":
	case "gzip":
		c.gzip = true
	default:
		return c, &configError{pick("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", e.TracesCompression, "OTEL_EXPORTER_OTLP_COMPRESSION"), fmt.Sprintf("%q: use gzip or none", compression)}
	}
	if err := c.setSampler(e.Sampler, e.SamplerArg); err != nil {
		return c, err
	}
	if err := c.setResource(e.ServiceName, e.ResourceAttributes); err != nil {
		return c, err
	}
	if err := c.setBatch(e); err != nil {
		return c, err
	}

	switch {
	case disabled:
		c.off = "OTEL_SDK_DISABLED=true"
	case exporter == "none":
		c.off = "OTEL_TRACES_EXPORTER=none"
	case exporter == "" && c.endpointVariable == "":
		c.off = "no OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER=otlp"
	default:
		c.enabled = true
	}
	return c, nil
}

// firstSet returns the first of a signal-specific value, the general one and a
// default that is set.
func firstSet(specific, general, def string) string {
	switch {
	case specific != "":
		return specific
	case general != "":
		return general
	}
	return def
}

// pick names the variable a value came from: specific when it is set.
func pick(specificVariable, specific, generalVariable string) string {
	if specific != "" {
		return specificVariable
	}
	return generalVariable
}

// setEndpoint resolves the exporter's URL as the OTLP exporter
// specification says: the traces endpoint as it is, or the general one
// with /v1/traces appended (HTTP); gRPC takes scheme, host and port.
func (c *tracingConfig) setEndpoint(e otelEnv) error {
	raw, variable := e.TracesEndpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	if raw == "" {
		raw, variable = e.Endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT"
	}
	if raw == "" {
		c.endpoint = "http://localhost:4318/v1/traces"
		if c.protocol == protocolGRPC {
			c.endpoint = "http://localhost:4317"
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &configError{variable, fmt.Sprintf("%q is not an http:// or https:// URL with a host", sanitizeURL(raw))}
	}
	if _, port, err := net.SplitHostPort(u.Host); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return &configError{variable, fmt.Sprintf("%q has a port that is not a number", sanitizeURL(raw))}
		}
	}
	if variable == "OTEL_EXPORTER_OTLP_ENDPOINT" && c.protocol != protocolGRPC {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	}
	c.endpoint, c.endpointVariable = u.String(), variable
	return nil
}

// sanitizeURL drops the user information of a URL for messages and logs.
func sanitizeURL(raw string) string {
	return redactURLs(raw)
}

// setSampler builds the sampler OTEL_TRACES_SAMPLER names, with the SDK's
// default, parentbased_always_on: the caller's sampled flag decides, and a
// trace that starts here is sampled.
func (c *tracingConfig) setSampler(name, arg string) error {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		name = "parentbased_always_on"
	}
	ratio := 1.0
	if strings.HasSuffix(name, "traceidratio") && arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return &configError{"OTEL_TRACES_SAMPLER_ARG", fmt.Sprintf("%q is not a ratio between 0 and 1", arg)}
		}
		ratio = r
	}
	switch name {
	case "always_on":
		c.sampler = sdktrace.AlwaysSample()
	case "always_off":
		c.sampler = sdktrace.NeverSample()
	case "traceidratio":
		c.sampler = sdktrace.TraceIDRatioBased(ratio)
	case "parentbased_always_on":
		c.sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
	case "parentbased_always_off":
		c.sampler = sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		c.sampler = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	default:
		return &configError{"OTEL_TRACES_SAMPLER", fmt.Sprintf("%q: use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)}
	}
	c.samplerName = c.sampler.Description()
	return nil
}

// setResource describes the process: OTEL_RESOURCE_ATTRIBUTES, then
// service.name from OTEL_SERVICE_NAME (which wins), else the bridge's name.
func (c *tracingConfig) setResource(serviceName, attrs string) error {
	list, err := parseOTelList(attrs)
	if err != nil {
		return &configError{"OTEL_RESOURCE_ATTRIBUTES", err.Error()}
	}
	keys := make([]string, 0, len(list))
	for k := range list {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c.resource = append(c.resource, attribute.String(k, list[k]))
	}
	c.serviceName = firstSet(strings.TrimSpace(serviceName), list[string(semconv.ServiceNameKey)], defaultServiceName)
	c.resource = append(c.resource, semconv.ServiceName(c.serviceName))
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		c.resource = append(c.resource, semconv.ServiceVersion(info.Main.Version))
	}
	return nil
}

// setBatch reads the batch span processor's OTEL_BSP_* variables (the SDK
// would ignore a bad one silently).
func (c *tracingConfig) setBatch(e otelEnv) error {
	for _, v := range []struct {
		variable, value string
		option          func(int) sdktrace.BatchSpanProcessorOption
	}{
		{"OTEL_BSP_SCHEDULE_DELAY", e.BSPScheduleDelay, func(n int) sdktrace.BatchSpanProcessorOption {
			return sdktrace.WithBatchTimeout(time.Duration(n) * time.Millisecond)
		}},
		{"OTEL_BSP_EXPORT_TIMEOUT", e.BSPExportTimeout, func(n int) sdktrace.BatchSpanProcessorOption {
			return sdktrace.WithExportTimeout(time.Duration(n) * time.Millisecond)
		}},
		{"OTEL_BSP_MAX_QUEUE_SIZE", e.BSPMaxQueueSize, sdktrace.WithMaxQueueSize},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", e.BSPMaxExportBatch, sdktrace.WithMaxExportBatchSize},
	} {
		if v.value == "" {
			continue
		}
		n, err := strconv.ParseUint(v.value, 10, 31)
		if err != nil || n == 0 {
			return &configError{v.variable, fmt.Sprintf("%q is not a whole number greater than zero", v.value)}
		}
		c.batch = append(c.batch, v.option(int(n)))
	}
	return nil
}

// parseOTelBool reads a boolean as the OpenTelemetry configuration says:
// true or false in any case; empty is false.
func parseOTelBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, fmt.Errorf("%q: use true or false", s)
}

// parseOTelList reads "key=value,key2=value2" (OTEL_RESOURCE_ATTRIBUTES,
// OTEL_EXPORTER_OTLP_HEADERS), values percent-decoded. Its errors quote no
// value: a header's may be an API key.
func parseOTelList(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for i, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("entry %d is not key=value (entries are separated by commas)", i+1)
		}
		value, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("the value of %s is not percent-encoded correctly", k)
		}
		out[k] = value
	}
	return out, nil
}

// traces is the running tracer provider, or nothing when traces are off.
type traces struct {
	cfg      tracingConfig
	provider *sdktrace.TracerProvider
}

// startTraces builds the tracer provider c describes. Nothing connects yet:
// a collector that is down costs spans, never the start.
func startTraces(ctx context.Context, c tracingConfig, logger *slog.Logger) (*traces, error) {
	if !c.enabled {
		return &traces{cfg: c}, nil
	}
	exporter, err := c.exporter(ctx)
	if err != nil {
		return nil, &configError{firstSet(c.endpointVariable, "", "OTEL_EXPORTER_OTLP_ENDPOINT"), err.Error()}
	}
	res, err := resource.New(ctx, resource.WithSchemaURL(semconv.SchemaURL), resource.WithAttributes(c.resource...),
		resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil {
		return nil, &configError{"OTEL_RESOURCE_ATTRIBUTES", err.Error()}
	}
	// The SDK reports failed exports through otel's global handlers: to
	// the bridge's log, at most one line a minute.
	otel.SetLogger(logr.FromSlogHandler(logger.Handler()))
	otel.SetErrorHandler(&exportErrors{log: logger, every: time.Minute})
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter, c.batch...),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(c.sampler))
	return &traces{cfg: c, provider: tp}, nil
}

// logWhere writes the start's line about traces: where they go, or why
// there are none. It comes once the bridge listens, so that a start that
// fails still ends with one line, the one naming its cause.
func (t *traces) logWhere(logger *slog.Logger) {
	c := t.cfg
	if !c.enabled {
		logger.Info("traces off; a request's W3C traceparent still passes to its message", slog.String("why", c.off))
		return
	}
	endpointFrom := c.endpointVariable
	if endpointFrom == "" {
		endpointFrom = "default (OTEL_TRACES_EXPORTER=otlp)"
	}
	logger.Info("traces exported over OTLP",
		slog.String("endpoint", sanitizeURL(c.endpoint)), slog.String("endpoint_from", endpointFrom),
		slog.String("protocol", c.protocol), slog.String("sampler", c.samplerName),
		slog.String("service_name", c.serviceName))
}

// exporter is the OTLP span exporter c describes.
func (c tracingConfig) exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if c.protocol == protocolGRPC {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(c.endpoint), otlptracegrpc.WithHeaders(c.headers)}
		if c.timeout > 0 {
			opts = append(opts, otlptracegrpc.WithTimeout(c.timeout))
		}
		if c.gzip {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(c.endpoint), otlptracehttp.WithHeaders(c.headers)}
	if c.protocol == protocolHTTPJSON {
		opts = append(opts, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
	}
	if c.timeout > 0 {
		opts = append(opts, otlptracehttp.WithTimeout(c.timeout))
	}
	if c.gzip {
		opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	} else {
		opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.NoCompression))
	}
	return otlptracehttp.New(ctx, opts...)
}

// bridgeConfig sets the bridge's tracing: the provider, and the brokers the
// producer spans name.
func (t *traces) bridgeConfig(bcfg *bridge.Config, cfg config, stack *sinkStack) {
	if t.provider == nil {
		return
	}
	bcfg.TracerProvider = t.provider
	for _, name := range cfg.Sinks {
		b := bridge.Broker{System: name}
		var addrs []string
		switch {
		case name == "kafka":
			addrs = cfg.KafkaBrokers
		case cfg.NATSURL != "":
			addrs = strings.Split(cfg.NATSURL, ",")
		case stack.embedded != nil:
			addrs = []string{stack.embedded.ClientURL()}
		}
		// With several addresses the client picks one: which is not known
		// here, so none is named.
		if len(addrs) == 1 {
			b.Address, b.Port = hostPort(addrs[0])
		}
		bcfg.Brokers = append(bcfg.Brokers, b)
	}
}

// hostPort splits "nats://user:pass@host:4222" or "host:9092" into host
// and port (0 when there is none), without the user information.
func hostPort(addr string) (string, int) {
	addr = strings.TrimSpace(addr)
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		addr = rest
	}
	if at := strings.LastIndex(addr, "@"); at >= 0 {
		addr = addr[at+1:]
	}
	addr, _, _ = strings.Cut(addr, "/")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// shutdown flushes the spans still queued, within ctx. A collector that is
// down loses them, with a warning: traces are not worth a failed exit.
func (t *traces) shutdown(ctx context.Context, logger *slog.Logger) {
	if t == nil || t.provider == nil {
		return
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		logger.Warn("traces not flushed at shutdown; the spans still queued are lost", slog.Any("err", err))
	}
}

// exportErrors logs the SDK's errors (a failed export, mostly) at most once
// per every, counting the ones it kept quiet.
type exportErrors struct {
	log   *slog.Logger
	every time.Duration

	mu     sync.Mutex
	last   time.Time
	quiet  int
	logged bool
}

func (h *exportErrors) Handle(err error) {
	h.mu.Lock()
	now := time.Now()
	if h.logged && now.Sub(h.last) < h.every {
		h.quiet++
		h.mu.Unlock()
		return
	}
	quiet := h.quiet
	h.last, h.quiet, h.logged = now, 0, true
	h.mu.Unlock()
	h.log.Warn("traces: export failed; spans are dropped until the collector answers",
		slog.Any("err", err), slog.Int("errors_not_logged", quiet))
}
