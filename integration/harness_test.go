// Package integration holds end-to-end tests: the real senfenico-bridge
// binary, built once per run, against real brokers (an in-process
// nats-server, the Kafka broker from integration/kafka).
package integration

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/schemas"
)

const testKey = "9e191505-9637-4c2b-a55e-da813b882732"

// binary is the senfenico-bridge executable under test, built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "senfenico-bridge-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "senfenico-bridge")
	build := exec.Command("go", "build", "-o", binary, "../cmd/senfenico-bridge")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build senfenico-bridge:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bridgeProc is a running senfenico-bridge process.
type bridgeProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	logs *testkit.Buffer
	done chan error
}

// startBridge runs the binary with the given variables (on top of a minimal
// environment: keys, loopback listener, JSON logs) and waits until it
// listens.
func startBridge(t *testing.T, vars map[string]string) *bridgeProc {
	t.Helper()
	env := map[string]string{
		"SENFENICO_WEBHOOK_KEYS": testKey,
		"LISTEN_ADDR":            "127.0.0.1:0",
		"LOG_FORMAT":             "json",
		"PUBLISH_TIMEOUT":        "2s",
		"DATA_DIR":               t.TempDir(),
		"NATS_EMBEDDED_LISTEN":   "127.0.0.1:0",
	}
	for k, v := range vars {
		env[k] = v
	}
	cmd := exec.Command(binary)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &bridgeProc{t: t, cmd: cmd, logs: &testkit.Buffer{}, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.logs.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "senfenico-bridge listening" {
				addr <- rec.Addr
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("bridge log:\n%s", p.logs.String())
		}
	})
	select {
	case a := <-addr:
		p.base = "http://" + a
	case err := <-p.done:
		t.Fatalf("bridge exited before listening (%v):\n%s", err, p.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("bridge did not listen within 60s:\n%s", p.logs.String())
	}
	return p
}

// terminate sends SIGTERM and returns the exit code.
func (p *bridgeProc) terminate() int {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("bridge did not exit within 60s of SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

// answer is what the bridge said to one webhook request.
type answer struct {
	Status    int
	ID        string `json:"id"`
	Subject   string `json:"subject"`
	Duplicate bool   `json:"duplicate"`
	Err       error
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// post sends body with the X-Webhook-Hash header (nil: none).
func (p *bridgeProc) post(body string, signature *string) answer {
	req, err := http.NewRequest(http.MethodPost, p.base+"/webhooks/senfenico", strings.NewReader(body))
	if err != nil {
		return answer{Err: err}
	}
	if signature != nil {
		req.Header.Set(webhook.HeaderName, *signature)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return answer{Err: err}
	}
	defer resp.Body.Close()
	a := answer{Status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			a.Err = err
		}
	}
	return a
}

func (p *bridgeProc) get(path string) int {
	resp, err := httpClient.Get(p.base + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func sign(body string) *string {
	s := webhook.Sign([]byte(body), testKey)
	return &s
}

// notification builds a body the way Senfenico does: data serialised into a
// JSON string, Python's separators.
func notification(event, reference string, amount int) string {
	data := fmt.Sprintf(`{"reference": %q, "amount": %d, "fees": 30.5, "currency": "XOF", "status": "success", "live_mode": false}`, reference, amount)
	quoted, _ := json.Marshal(data)
	return fmt.Sprintf(`{"event": %q, "data": %s}`, event, quoted)
}

func randomReference() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// expectedBody is what the bridge must publish for a routed vector body:
// the data document as json.dumps writes it, which for Senfenico's own
// bodies (data as a JSON string) is the string's content byte for byte.
func expectedBody(t *testing.T, body string) string {
	t.Helper()
	var in struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	data := []byte(in.Data)
	var s string
	if json.Unmarshal(in.Data, &s) == nil {
		data = []byte(s)
	}
	doc, err := pyjson.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`{"event": "%s", "data": %s}`, in.Event, doc.AppendPython(nil))
}

var (
	validatorOnce sync.Once
	validator     *schemas.Validator
)

// validateSchema checks a published body against schemas/, as every
// consumer may.
func validateSchema(t *testing.T, event string, body []byte) {
	t.Helper()
	validatorOnce.Do(func() {
		v, err := schemas.New()
		if err != nil {
			panic(err)
		}
		validator = v
	})
	if err := validator.Validate(event, body); err != nil {
		t.Errorf("published %s fails its schema: %v\n%s", event, err, body)
	}
}

func dialTCP(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, time.Second)
}
