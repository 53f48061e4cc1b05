// Package cluster runs the real senfenico-bridge binary, several instances,
// against a real three-node NATS cluster (three nats-server processes on
// loopback) and breaks nodes and bridges in the middle of a burst.
package cluster

import (
	"bufio"
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

	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
)

// natsServerVersion is the nats-server the cluster runs: the version go.mod
// embeds, so the tests and the embedded broker agree.
const natsServerVersion = "v2.15.2"

var (
	// bridgeBinary is senfenico-bridge built by TestMain.
	bridgeBinary string
	// natsServerBinary is nats-server installed by TestMain into the
	// repository's .bin.
	natsServerBinary string
)

func TestMain(m *testing.M) {
	code, err := setUp(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration/cluster:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setUp(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "senfenico-cluster-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bridgeBinary = filepath.Join(dir, "senfenico-bridge")
	if out, err := exec.Command("go", "build", "-o", bridgeBinary, "../../cmd/senfenico-bridge").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build senfenico-bridge: %v\n%s", err, out)
	}
	natsServerBinary, err = installNATSServer()
	if err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// installNATSServer returns <repo>/.bin/nats-server, installing it with go
// install when it is missing or another version.
func installNATSServer() (string, error) {
	bin, err := filepath.Abs(filepath.Join("..", "..", ".bin"))
	if err != nil {
		return "", err
	}
	path := filepath.Join(bin, "nats-server")
	if out, err := exec.Command(path, "--version").Output(); err == nil && strings.Contains(string(out), natsServerVersion) {
		return path, nil
	}
	cmd := exec.Command("go", "install", "github.com/nats-io/nats-server/v2@"+natsServerVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("install nats-server %s into %s: %v\n%s", natsServerVersion, bin, err, out)
	}
	return path, nil
}

// process is a child process that can be SIGKILLed and started again with
// the same command line.
type process struct {
	t    *testing.T
	name string
	args []string
	env  []string
	logs *testkit.Buffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func newProcess(t *testing.T, name string, env []string, args ...string) *process {
	p := &process{t: t, name: name, args: args, env: env, logs: &testkit.Buffer{}}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, lastLines(p.logs.String(), 60))
		}
		saveLog(t, p.name, p.logs.String())
	})
	return p
}

// start runs the process; its output goes to p.logs, and to lines (when
// not nil) line by line.
func (p *process) start(lines func(string)) {
	p.t.Helper()
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = p.env
	out, err := cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	cmd.Stdout = p.logs
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	fmt.Fprintf(p.logs, "--- started pid %d\n", cmd.Process.Pid)
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.logs.Write(append(sc.Bytes(), '\n'))
			if lines != nil {
				lines(sc.Text())
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// kill sends SIGKILL, as a crash or an OOM kill would, and waits for the
// process to be gone.
func (p *process) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	fmt.Fprintf(p.logs, "--- killed pid %d\n", cmd.Process.Pid)
}

// exited reports whether the process ended by itself.
func (p *process) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// saveLog writes a process's whole output into the directory
// CLUSTER_TEST_LOG_DIR names, when it is set: a failed test's log shows
// only the last lines.
func saveLog(t *testing.T, name, logs string) {
	dir := os.Getenv("CLUSTER_TEST_LOG_DIR")
	if dir == "" {
		return
	}
	path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".log")
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		err = os.WriteFile(path, []byte(logs), 0o644)
	}
	if err != nil {
		t.Errorf("keep %s output: %v", name, err)
		return
	}
	t.Logf("whole %s output: %s", name, path)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// natsNode is one nats-server of the cluster, with its own store and
// sync_interval: always, as the README tells operators to run it.
type natsNode struct {
	*process
	serverName string
	clientPort string
}

func (n *natsNode) url() string { return "nats://127.0.0.1:" + n.clientPort }

// startCluster starts three clustered JetStream nodes and waits until
// JetStream has a meta leader.
func startCluster(t *testing.T) []*natsNode {
	t.Helper()
	const size = 3
	routePorts := make([]string, size)
	for i := range routePorts {
		routePorts[i] = testkit.FreePortString(t)
	}
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%s", p))
	}
	nodes := make([]*natsNode, size)
	for i := range nodes {
		dir := t.TempDir()
		n := &natsNode{serverName: fmt.Sprintf("n%d", i+1), clientPort: testkit.FreePortString(t)}
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%s
max_payload: 8MB
jetstream {
  store_dir: %q
  sync_interval: always
}
cluster {
  name: senfenico-test
  listen: 127.0.0.1:%s
  routes: [%s]
}
`, n.serverName, n.clientPort, filepath.Join(dir, "store"), routePorts[i], strings.Join(routes, ", "))
		confPath := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		n.process = newProcess(t, "nats-server "+n.serverName, os.Environ(), natsServerBinary, "-c", confPath)
		nodes[i] = n
	}
	for _, n := range nodes {
		n.startAndWait(t)
	}
	return nodes
}

// startAndWait starts the node and waits until it accepts clients; it fails
// the test loudly when the server exits or does not listen.
func (n *natsNode) startAndWait(t *testing.T) {
	t.Helper()
	n.start(nil)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if n.exited() {
			t.Fatalf("nats-server %s exited at start:\n%s", n.serverName, lastLines(n.logs.String(), 40))
		}
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+n.clientPort, time.Second); err == nil {
			conn.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nats-server %s did not listen within 30s:\n%s", n.serverName, lastLines(n.logs.String(), 40))
}

// bridge is one senfenico-bridge process on a fixed loopback port, so that
// it comes back on the same address after a SIGKILL.
type bridge struct {
	*process
	port string
}

func (b *bridge) base() string { return "http://127.0.0.1:" + b.port }

func newBridge(t *testing.T, name string, vars map[string]string) *bridge {
	t.Helper()
	b := &bridge{port: testkit.FreePortString(t)}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"SENFENICO_WEBHOOK_KEYS=" + testKey,
		"LISTEN_ADDR=127.0.0.1:" + b.port,
		"LOG_FORMAT=json",
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	b.process = newProcess(t, name, env, bridgeBinary)
	return b
}

// startAndWait starts the bridge and waits for its "listening" line.
func (b *bridge) startAndWait(t *testing.T) {
	t.Helper()
	listening := make(chan struct{}, 1)
	b.start(func(line string) {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "senfenico-bridge listening" {
			select {
			case listening <- struct{}{}:
			default:
			}
		}
	})
	deadline := time.After(60 * time.Second)
	for {
		select {
		case <-listening:
			return
		case <-deadline:
			t.Fatalf("%s did not listen within 60s:\n%s", b.name, lastLines(b.logs.String(), 40))
		case <-time.After(100 * time.Millisecond):
			if b.exited() {
				t.Fatalf("%s exited at start:\n%s", b.name, lastLines(b.logs.String(), 40))
			}
		}
	}
}

var probeClient = &http.Client{Timeout: 5 * time.Second}

// ready returns the status of GET /readyz (0 when nothing answers).
func (b *bridge) ready() int {
	resp, err := probeClient.Get(b.base() + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady waits until /readyz answers want, failing after timeout.
func waitReady(t *testing.T, timeout time.Duration, want int, bridges ...*bridge) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, b := range bridges {
		for {
			got := b.ready()
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s /readyz = %d after %v, want %d", b.name, got, timeout, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
