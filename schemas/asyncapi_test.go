package schemas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
	"github.com/senfenico-bridge/senfenico-bridge/schemas"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
)

// The document as the tests read it: the JSON form of the same tree.
type document struct {
	Info struct {
		Version string `json:"version"`
	} `json:"info"`
	Servers    map[string]map[string]any `json:"servers"`
	Channels   map[string]channel        `json:"channels"`
	Operations map[string]struct {
		Action  string            `json:"action"`
		Channel map[string]string `json:"channel"`
	} `json:"operations"`
	Components struct {
		Schemas    map[string]schemaDoc `json:"schemas"`
		Messages   map[string]any       `json:"messages"`
		Parameters map[string]struct {
			Default *string `json:"default"`
		} `json:"parameters"`
	} `json:"components"`
}

type channel struct {
	Address  string                       `json:"address"`
	Messages map[string]map[string]string `json:"messages"`
}

type schemaDoc struct {
	Required   []string                  `json:"required"`
	Properties map[string]map[string]any `json:"properties"`
}

func loadDocument(t *testing.T) document {
	t.Helper()
	var doc document
	if err := json.Unmarshal(schemas.AsyncAPIJSON(), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestAsyncAPI checks the document's shape: a channel for each family with
// a schema, one for the others and one for dead letters, on each broker,
// each with one send operation; the same bytes from a fresh build.
func TestAsyncAPI(t *testing.T) {
	y := schemas.AsyncAPI()
	again, err := schemas.RenderAsyncAPI()
	if err != nil {
		t.Fatalf("RenderAsyncAPI: %v", err)
	}
	if !bytes.Equal(y, again) {
		t.Fatal("two builds of the document differ")
	}
	doc := loadDocument(t)
	if !strings.HasPrefix(doc.Info.Version, schemas.ContractVersion+"+") || len(doc.Info.Version) != len(schemas.ContractVersion)+13 {
		t.Errorf("info.version = %q, want %s+<12 hex digits>", doc.Info.Version, schemas.ContractVersion)
	}
	var wantChannels []string
	for _, b := range []string{"nats", "kafka"} {
		for _, f := range bridge.DocumentedFamilies {
			wantChannels = append(wantChannels, b+strings.ToUpper(f[:1])+f[1:])
		}
		wantChannels = append(wantChannels, b+"OtherFamily", b+"DeadLetter")
	}
	var gotChannels []string
	for id := range doc.Channels {
		gotChannels = append(gotChannels, id)
	}
	sort.Strings(wantChannels)
	sort.Strings(gotChannels)
	if !slices.Equal(gotChannels, wantChannels) {
		t.Fatalf("channels %v, want %v", gotChannels, wantChannels)
	}
	for _, f := range bridge.DocumentedFamilies {
		id := "nats" + strings.ToUpper(f[:1]) + f[1:]
		if got, want := doc.Channels[id].Address, "{topicPrefix}"+f+".{status}"; got != want {
			t.Errorf("channel %s: address %q, want %q", id, got, want)
		}
	}
	if got := doc.Channels["kafkaDeadLetter"].Address; got != "{deadLetterSubject}" {
		t.Errorf("dead-letter address %q", got)
	}
	sent := map[string]int{}
	for id, op := range doc.Operations {
		if op.Action != "send" {
			t.Errorf("operation %s: action %q", id, op.Action)
		}
		sent[strings.TrimPrefix(op.Channel["$ref"], "#/channels/")]++
	}
	for _, id := range wantChannels {
		if sent[id] != 1 {
			t.Errorf("channel %s has %d send operations, want 1", id, sent[id])
		}
	}
}

// TestAsyncAPIMatchesTheBridge holds the facts the document states about
// the rest of the bridge to the constants they come from.
func TestAsyncAPIMatchesTheBridge(t *testing.T) {
	doc := loadDocument(t)
	text := string(schemas.AsyncAPIJSON())
	if got := *doc.Components.Parameters["deadLetterSubject"].Default; got != bridge.DefaultDeadLetterSubject {
		t.Errorf("deadLetterSubject default %q, want bridge.DefaultDeadLetterSubject %q", got, bridge.DefaultDeadLetterSubject)
	}
	if got := doc.Servers["nats"]["variables"].(map[string]any)["host"].(map[string]any)["default"]; got != natsembed.DefaultListen {
		t.Errorf("NATS host default %v, want natsembed.DefaultListen %q", got, natsembed.DefaultListen)
	}
	for _, want := range []string{"JetStream stream " + natssink.DefaultStream + " ", `"enum":["` + kafkasink.DefaultClientID + `"]`} {
		if !strings.Contains(text, want) {
			t.Errorf("the document does not say %s", want)
		}
	}
	var families []string
	for _, name := range schemas.Names() {
		if name != schemas.EnvelopeName {
			families = append(families, name)
		}
	}
	if documented := slices.Sorted(slices.Values(bridge.DocumentedFamilies)); !slices.Equal(families, documented) {
		t.Errorf("schemas for %v, bridge.DocumentedFamilies %v", families, documented)
	}

	nats, kafka := doc.Components.Schemas["NatsDeadLetterHeaders"], doc.Components.Schemas["KafkaDeadLetterHeaders"]
	for _, c := range []struct {
		name, got, want string
	}{
		{"NATS ce-specversion", fmt.Sprint(nats.Properties[natssink.HeaderSpecVersion]["const"]), natssink.SpecVersion},
		{"Kafka ce_specversion", fmt.Sprint(kafka.Properties[kafkasink.HeaderSpecVersion]["const"]), kafkasink.SpecVersion},
		{"NATS ce-source", fmt.Sprint(nats.Properties[natssink.HeaderSource]["const"]), sinks.Source},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	for _, c := range []struct {
		broker  string
		headers schemaDoc
		names   []string
	}{
		{"NATS", nats, []string{natssink.HeaderSpecVersion, natssink.HeaderID, natssink.HeaderType, natssink.HeaderSource, natssink.HeaderTime,
			natssink.HeaderDataContentType, natssink.HeaderContentType, natssink.HeaderMsgID, natssink.HeaderDeadLetterReason, natssink.HeaderDeadLetterDetail}},
		{"Kafka", kafka, []string{kafkasink.HeaderSpecVersion, kafkasink.HeaderID, kafkasink.HeaderType, kafkasink.HeaderSource, kafkasink.HeaderTime,
			kafkasink.HeaderContentType, kafkasink.HeaderDeadLetterReason, kafkasink.HeaderDeadLetterDetail}},
	} {
		for _, name := range c.names {
			if _, ok := c.headers.Properties[name]; !ok {
				t.Errorf("%s header %s is not in the document", c.broker, name)
			}
		}
	}

	// Every Reason* constant of sinks and bridge, read from their source,
	// is a value of the reason header, and nothing else is.
	want := reasonConstants(t, "../sinks", "../bridge")
	var got []string
	for _, r := range nats.Properties[natssink.HeaderDeadLetterReason]["enum"].([]any) {
		got = append(got, r.(string))
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("dead-letter reasons %v, the code's %v", got, want)
	}
}

// reasonConstants returns the values of the string constants named
// Reason* in the non-test Go files of dirs, sorted.
func reasonConstants(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	fset := token.NewFileSet()
	for _, dir := range dirs {
		paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(paths) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, path := range paths {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				spec, ok := n.(*ast.ValueSpec)
				if !ok {
					return true
				}
				for i, name := range spec.Names {
					if !strings.HasPrefix(name.Name, "Reason") || i >= len(spec.Values) {
						continue
					}
					if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						out = append(out, v)
					}
				}
				return true
			})
		}
	}
	sort.Strings(out)
	return out
}

// compiled compiles components.schemas entries of the document (JSON
// Schema draft 07, formats asserted) for the tests to validate with.
type compiled struct {
	t *testing.T
	c *jsonschema.Compiler
}

const documentURL = "https://senfenico-bridge.dev/asyncapi.json"

func compileDocument(t *testing.T) compiled {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.AsyncAPIJSON()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource(documentURL, doc); err != nil {
		t.Fatal(err)
	}
	return compiled{t, c}
}

func (c compiled) schema(name string) *jsonschema.Schema {
	c.t.Helper()
	s, err := c.c.Compile(documentURL + "#/components/schemas/" + name)
	if err != nil {
		c.t.Fatalf("compile %s: %v", name, err)
	}
	return s
}

// TestAsyncAPIPayloadsValidateLikeTheSchemas: each message's payload
// schema, as the document has it, accepts exactly the bodies the Validator
// accepts, on the shared vectors, on the samples and on every declared
// field of every family set to every JSON type.
func TestAsyncAPIPayloadsValidateLikeTheSchemas(t *testing.T) {
	v := newValidator(t)
	c := compileDocument(t)
	samples := map[string]string{"charge": chargeData, "checkout": checkoutData, "settlement": settlementData, "transfer": transferData}
	values := []string{"", `null`, `"x"`, `"8d116ece-1738-f7d9-3d9c-172411e20b8f"`, `1`, `1.5`, `true`, `[]`, `["x"]`, `[{"attempt_date": 5}]`, `[{"ip_address": "1.2.3.4"}]`, `{}`}
	checked := 0
	check := func(t *testing.T, component, event string, body []byte) {
		t.Helper()
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		validatorOK := v.Validate(event, body) == nil
		documentErr := c.schema(component).Validate(doc)
		if validatorOK != (documentErr == nil) {
			t.Errorf("%s %s: Validator passes it %t, the document's %s: %v", event, body, validatorOK, component, documentErr)
		}
		checked++
	}
	for _, family := range bridge.DocumentedFamilies {
		component := strings.ToUpper(family[:1]) + family[1:] + "Event"
		event := family + ".success"
		var fields map[string]any
		if err := json.Unmarshal([]byte(samples[family]), &fields); err != nil {
			t.Fatal(err)
		}
		check(t, component, event, publishedBody(event, samples[family]))
		check(t, component, event, publishedBody(event, `"{}"`))
		check(t, component, event, []byte(`{"event": "`+event+`"}`))
		check(t, component, event, []byte(`{"event": "`+event+`", "data": {}, "extra": 1}`))
		for field := range fields {
			for _, value := range values {
				check(t, component, event, publishedBody(event, withField(t, samples[family], field, value)))
			}
		}
	}
	for _, body := range []string{
		`{"event": "refund.created", "data": {"anything": [1]}}`,
		`{"event": "refund..created", "data": {}}`,
		`{"event": "` + strings.Repeat("a", 250) + `", "data": {}}`,
		`{"event": "refund.created", "data": "{}"}`,
		`{"event": "refund.created"}`,
		`{"data": {}}`,
		`[1]`,
	} {
		check(t, "Event", "", []byte(body))
	}
	for _, vec := range routableVectors(t) {
		component := strings.ToUpper(schemas.Family(vec.event)[:1]) + schemas.Family(vec.event)[1:] + "Event"
		check(t, component, vec.event, vec.body)
	}
	t.Logf("%d bodies checked", checked)
}

type publishedVector struct {
	event string
	body  []byte
}

// routableVectors are the shared vectors' events as the bridge publishes
// them.
func routableVectors(t *testing.T) []publishedVector {
	t.Helper()
	var out []publishedVector
	for _, vec := range vectors.Load().Vectors {
		if vec.Event == "" {
			continue
		}
		var req struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(vec.Body), &req); err != nil {
			t.Fatal(err)
		}
		data := string(req.Data)
		var s string
		if json.Unmarshal(req.Data, &s) == nil {
			data = s
		}
		out = append(out, publishedVector{vec.Event, publishedBody(req.Event, data)})
	}
	if len(out) < 6 {
		t.Fatalf("only %d routable vectors", len(out))
	}
	return out
}

// headerMessages are a routed event, a JSON dead letter with a name that
// needs encoding, and a dead letter that is not JSON.
func headerMessages() []*sinks.Message {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return []*sinks.Message{
		{Subject: "checkout.success", ID: "0123456789abcdef0123456789abcdef", Type: "checkout.success", Time: now,
			Key: "8d116ece-1738-f7d9-3d9c-172411e20b8f", Body: publishedBody("checkout.success", checkoutData)},
		{Subject: bridge.DefaultDeadLetterSubject, ID: "1123456789abcdef0123456789abcdef", Type: `check out "é" 100%`, Time: now,
			Key: "1123456789abcdef0123456789abcdef", Body: []byte(`{"event": "check out \"é\" 100%", "data": "{}"}`),
			DeadLetterReason: sinks.ReasonUnroutable, DeadLetterDetail: "the event name is not a subject: a space, é"},
		{Subject: bridge.DefaultDeadLetterSubject, ID: "2123456789abcdef0123456789abcdef", Type: "charge.success", Time: now,
			Key: "2123456789abcdef0123456789abcdef", Body: []byte("\xff\x00 not JSON"), ContentType: sinks.ContentTypeOctetStream,
			DeadLetterReason: sinks.ReasonMalformedData},
	}
}

// checkHeaders validates one message's headers against the document's
// schema for them, and checks that each header is documented by name.
func checkHeaders(t *testing.T, c compiled, doc document, component string, headers map[string][]string) {
	t.Helper()
	props := doc.Components.Schemas[component].Properties
	value := map[string]any{}
	for name, vs := range headers {
		if _, ok := props[name]; !ok {
			t.Errorf("%s: header %s (%q) is not in the document", component, name, vs)
		}
		if len(vs) != 1 {
			t.Errorf("%s: header %s has %d values", component, name, len(vs))
			continue
		}
		value[name] = vs[0]
	}
	if err := c.schema(component).Validate(value); err != nil {
		t.Errorf("%s: headers %v: %v", component, headers, err)
	}
}

func headersComponent(broker string, m *sinks.Message) string {
	if m.DeadLetterReason != "" {
		return broker + "DeadLetterHeaders"
	}
	return broker + "Headers"
}

// TestAsyncAPIHeadersMatchTheSinks publishes through the sinks' own
// encoders, Kafka's record builder and a JetStream stream on a real NATS
// server, and holds every header they wrote to the document.
func TestAsyncAPIHeadersMatchTheSinks(t *testing.T) {
	doc := loadDocument(t)
	c := compileDocument(t)
	keySchema := doc.Components.Messages["kafkaCheckoutEvent"].(map[string]any)["bindings"].(map[string]any)["kafka"].(map[string]any)["key"]
	if keySchema == nil {
		t.Fatal("no Kafka key in the checkout message's bindings")
	}

	t.Run("kafka", func(t *testing.T) {
		for _, m := range headerMessages() {
			record := kafkasink.Encode(m)
			headers := map[string][]string{}
			for _, h := range record.Headers {
				headers[h.Key] = append(headers[h.Key], string(h.Value))
			}
			checkHeaders(t, c, doc, headersComponent("Kafka", m), headers)
			if string(record.Key) != m.Key {
				t.Errorf("record key %q, want the message's key %q", record.Key, m.Key)
			}
		}
	})

	t.Run("nats", func(t *testing.T) {
		srv := natstest.Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sink, err := natssink.New(ctx, natssink.Config{
			URL:      srv.URL(),
			Subjects: natssink.StreamSubjects("", bridge.DefaultDeadLetterSubject),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close(context.Background())
		msgs := headerMessages()
		// A burst, so that some messages go through atomic batches and
		// carry their headers too.
		for i := range 64 {
			m := *msgs[0]
			m.ID = fmt.Sprintf("%032x", i+1000)
			msgs = append(msgs, &m)
		}
		byID := map[string]*sinks.Message{}
		var wg sync.WaitGroup
		for _, m := range msgs {
			byID[m.ID] = m
			wg.Go(func() {
				if _, err := sink.Publish(ctx, m); err != nil {
					t.Errorf("Publish %s: %v", m.ID, err)
				}
			})
		}
		wg.Wait()
		js, err := jetstream.New(srv.Client(t))
		if err != nil {
			t.Fatal(err)
		}
		stream, err := js.Stream(ctx, natssink.DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		batched := 0
		for seq := uint64(1); seq <= uint64(len(msgs)); seq++ {
			stored, err := stream.GetMsg(ctx, seq)
			if err != nil {
				t.Fatalf("stored message %d: %v", seq, err)
			}
			m := byID[stored.Header.Get(natssink.HeaderID)]
			if m == nil {
				t.Fatalf("stored message %d: ce-id %q not published", seq, stored.Header.Get(natssink.HeaderID))
			}
			if stored.Header.Get("Nats-Batch-Id") != "" {
				batched++
			}
			checkHeaders(t, c, doc, headersComponent("Nats", m), stored.Header)
		}
		t.Logf("%d of %d messages stored through atomic batches", batched, len(msgs))
	})
}

// TestAsyncAPIHandler serves the document as the schema handler serves
// the schemas.
func TestAsyncAPIHandler(t *testing.T) {
	srv := httptest.NewServer(schemas.AsyncAPIHandler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + schemas.AsyncAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, schemas.AsyncAPI()) {
		t.Fatalf("status %d, body equal %t", resp.StatusCode, bytes.Equal(got, schemas.AsyncAPI()))
	}
	for name, want := range map[string]string{"Content-Type": "application/yaml", "X-Content-Type-Options": "nosniff", "Content-Length": strconv.Itoa(len(got))} {
		if v := resp.Header.Get(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}

	tests := []struct {
		name   string
		method string
		path   string
		header string // a request header, "Name: value"
		status int
	}{
		{name: "head", method: http.MethodHead, path: schemas.AsyncAPIPath, status: http.StatusOK},
		{name: "range", method: http.MethodGet, path: schemas.AsyncAPIPath, header: "Range: bytes=0-9", status: http.StatusPartialContent},
		{name: "post", method: http.MethodPost, path: schemas.AsyncAPIPath, status: http.StatusMethodNotAllowed},
		{name: "other path", method: http.MethodGet, path: "/asyncapi.json", status: http.StatusNotFound},
		{name: "below it", method: http.MethodGet, path: schemas.AsyncAPIPath + "/x", status: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://x"+tt.path, nil)
			if name, value, ok := strings.Cut(tt.header, ": "); ok {
				req.Header.Set(name, value)
			}
			rec := httptest.NewRecorder()
			schemas.AsyncAPIHandler().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.status)
			}
			if tt.method == http.MethodPost && rec.Header().Get("Allow") != "GET, HEAD" {
				t.Fatalf("Allow = %q", rec.Header().Get("Allow"))
			}
			if tt.method == http.MethodHead && (rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "application/yaml") {
				t.Fatalf("HEAD: %d body bytes, Content-Type %q", rec.Body.Len(), rec.Header().Get("Content-Type"))
			}
		})
	}
}

// checkReport is what asyncapi-check/check.mjs prints.
type checkReport struct {
	YAMLMatchesJSON bool `json:"yamlMatchesJson"`
	Diagnostics     []struct {
		Severity string `json:"severity"`
		Code     string `json:"code"`
		Message  string `json:"message"`
		Path     string `json:"path"`
	} `json:"diagnostics"`
	Models *struct {
		TypeScript []struct {
			Name string `json:"name"`
			Code string `json:"code"`
		} `json:"typescript"`
		Go []struct {
			Name string `json:"name"`
			File string `json:"file"`
		} `json:"go"`
	} `json:"models"`
}

func (r checkReport) errors() []string {
	var out []string
	for _, d := range r.Diagnostics {
		if d.Severity == "error" {
			out = append(out, d.Code+" at "+d.Path+": "+d.Message)
		}
	}
	return out
}

// setupChecker installs the checker's locked packages once per test
// binary.
var setupChecker = sync.OnceValues(func() ([]byte, error) {
	return exec.Command("./asyncapi-check/setup.sh").CombinedOutput()
})

// runChecker writes yamlDoc and jsonDoc to files and runs check.mjs in
// mode on them. Node and npm are required: a machine without them fails
// here rather than skip the only check by a real AsyncAPI parser.
func runChecker(t *testing.T, mode string, yamlDoc, jsonDoc []byte, extra ...string) checkReport {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to check the AsyncAPI document: %v", tool, err)
		}
	}
	// go test caches a result by the files the test binary opened; the
	// checker's are read by node.
	for _, p := range []string{"asyncapi-check/check.mjs", "asyncapi-check/package.json", "asyncapi-check/package-lock.json", "asyncapi-check/setup.sh"} {
		if _, err := os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := setupChecker(); err != nil {
		t.Fatalf("asyncapi-check/setup.sh: %v\n%s", err, out)
	}
	dir := t.TempDir()
	yamlPath, jsonPath := filepath.Join(dir, "doc.yaml"), filepath.Join(dir, "doc.json")
	if err := os.WriteFile(yamlPath, yamlDoc, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jsonPath, jsonDoc, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", append([]string{"asyncapi-check/check.mjs", mode, yamlPath, jsonPath}, extra...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("check.mjs %s: %v\n%s", mode, err, stderr.Bytes())
	}
	var r checkReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("check.mjs printed %q: %v", out, err)
	}
	return r
}

// TestAsyncAPIParses runs the official AsyncAPI parser on the document,
// with its full rule set: any diagnostic of severity error fails. Then
// Modelina generates TypeScript and Go models from it, and the Go ones
// compile and read the bodies the bridge publishes.
func TestAsyncAPIParses(t *testing.T) {
	modelsDir := t.TempDir()
	r := runChecker(t, "asyncapi", schemas.AsyncAPI(), schemas.AsyncAPIJSON(), modelsDir)
	if !r.YAMLMatchesJSON {
		t.Error("js-yaml reads the YAML as something else than the document's JSON form")
	}
	for _, d := range r.Diagnostics {
		if d.Severity != "error" {
			t.Logf("%s %s at %s: %s", d.Severity, d.Code, d.Path, d.Message)
		}
	}
	if errs := r.errors(); len(errs) > 0 {
		t.Fatalf("the AsyncAPI parser refuses the document:\n%s", strings.Join(errs, "\n"))
	}
	if r.Models == nil {
		t.Fatal("no models generated")
	}

	t.Run("typescript", func(t *testing.T) {
		code := map[string]string{}
		for _, m := range r.Models.TypeScript {
			code[m.Name] = m.Code
		}
		for name, want := range map[string]string{
			"CheckoutEvent": "data: CheckoutData;", "CheckoutData": "reference: string;",
			"ChargeData": "confirmationAttempts?: ChargeConfirmationAttempt[];", "TransferData": "reference: string;",
		} {
			if !strings.Contains(code[name], want) {
				t.Errorf("TypeScript model %s lacks %q:\n%s", name, want, code[name])
			}
		}
	})

	t.Run("go", func(t *testing.T) {
		checkGoModels(t, modelsDir)
	})
}

// checkGoModels builds a program from the Go models Modelina wrote to dir
// and has it decode a published body of each family into them.
func checkGoModels(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "CheckoutEvent.go")); err != nil {
		t.Fatalf("no Go model for the checkout message: %v", err)
	}
	mod := t.TempDir()
	if err := os.CopyFS(filepath.Join(mod, "models"), os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod": "module check\n\ngo 1.22\n",
		"main.go": `package main

import (
	"encoding/json"
	"os"

	"check/models"
)

func main() {
	var in map[string]json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	var checkout models.CheckoutEvent
	var charge models.ChargeEvent
	var settlement models.SettlementEvent
	var transfer models.TransferEvent
	for name, into := range map[string]any{"checkout": &checkout, "charge": &charge, "settlement": &settlement, "transfer": &transfer} {
		if err := json.Unmarshal(in[name], into); err != nil {
			panic(name + ": " + err.Error())
		}
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"checkout":   []any{checkout.Event, checkout.Data.Reference, checkout.Data.Amount, checkout.Data.LiveMode},
		"charge":     []any{charge.Event, charge.Data.Reference, charge.Data.Amount, charge.Data.Fees, len(charge.Data.ConfirmationAttempts)},
		"settlement": []any{settlement.Event, settlement.Data.Reference, settlement.Data.Amount},
		"transfer":   []any{transfer.Event, transfer.Data.Reference, transfer.Data.Amount},
	})
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	samples := map[string]string{"charge": chargeData, "checkout": checkoutData, "settlement": settlementData, "transfer": transferData}
	in := map[string]json.RawMessage{}
	want := map[string][]any{}
	for family, data := range samples {
		event := family + ".success"
		in[family] = publishedBody(event, data)
		var d map[string]any
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			t.Fatal(err)
		}
		want[family] = []any{event, d["reference"], d["amount"]}
	}
	want["checkout"] = append(want["checkout"], false)
	want["charge"] = append(want["charge"], 30.5, float64(1))
	input, _ := json.Marshal(in)

	cmd := exec.Command("go", "run", ".")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local")
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the program on Modelina's Go models: %v\n%s", err, stderr.Bytes())
	}
	var got map[string][]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Modelina's Go models read %v, want %v", got, want)
	}
}

// TestAsyncAPICheckerRefusesBrokenDocuments proves the parser check is not
// vacuous: a dangling $ref and a wrong AsyncAPI field are each an error.
func TestAsyncAPICheckerRefusesBrokenDocuments(t *testing.T) {
	tests := []struct {
		name, old, new string
	}{
		{name: "dangling $ref", old: `"#/components/schemas/CheckoutData"`, new: `"#/components/schemas/NoSuchData"`},
		{name: "unknown action", old: "action: send", new: "action: publish"},
		{name: "operation on a message of another channel", old: `"#/channels/natsCharge/messages/chargeEvent"`, new: `"#/channels/natsCheckout/messages/checkoutEvent"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := string(schemas.AsyncAPI())
			if !strings.Contains(doc, tt.old) {
				t.Fatalf("the document has no %s", tt.old)
			}
			broken := strings.Replace(doc, tt.old, tt.new, 1)
			r := runChecker(t, "parse", []byte(broken), schemas.AsyncAPIJSON())
			if len(r.errors()) == 0 {
				t.Fatalf("the parser accepts a document with %s", tt.new)
			}
			t.Logf("refused: %s", strings.Join(r.errors(), "; "))
		})
	}
}

// TestAsyncAPIYAMLIsItsJSON has a YAML parser read the writer's output for
// the scalars YAML readers are known to take for something else.
func TestAsyncAPIYAMLIsItsJSON(t *testing.T) {
	tricky := []string{
		"", " ", "true", "False", "yes", "No", "on", "OFF", "y", "n", "null", "Null", "~", "1.0", "0x1F", "1e3", "0o17", "012",
		".inf", "-.inf", ".NaN", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "12:30:45", "<<", "=", "-", "- a", "?", "? x", ":",
		"a: b", "a:b", "#x", "a #b", "a#b", "@x", "`x", "{x}", "[x]", "*x", "&x", "!x", "!!str", "|", ">", "%YAML", "'q'", `"q"`,
		`\`, `a\nb`, "tab\there", "line\nbreak", "cr\rlf", "\u2028", "\u2029", "\u0085", "\x7f", "\u0080", "\ufeff", "\ufffe",
		"\x00", "\x1b[0m", "é", "😀", " lead", "trail ", "a  b", "---", "...", "$ref", "#/components/schemas/X", "ce-id",
		"application/json", "x,y", "[]", "{}", "\xff", "a\xc3", "Nats-Msg-Id", "snake_case", "1.0.0+9e7dfb8c8f92",
	}
	var seq []any
	tree := map[string]any{}
	for i, s := range tricky {
		seq = append(seq, s, map[string]any{s: s, "n": i})
		tree[s] = []any{s}
	}
	tree["sequence"] = seq
	tree["nested"] = []any{[]any{}, map[string]any{}, []any{[]any{"a", json.Number("1.5e2")}, true, nil, 0}, map[string]any{"k": map[string]any{"j": []any{map[string]any{"x": 1, "y": 2}}}}}
	jsonDoc, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	r := runChecker(t, "yaml", schemas.YAMLOf(tree), jsonDoc)
	if !r.YAMLMatchesJSON {
		t.Fatalf("js-yaml reads the YAML as something else than its JSON:\n%s", schemas.YAMLOf(tree))
	}
}
