package main

import (
	"bufio"
	"bytes"
	"encoding/json"
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

	"github.com/nats-io/nats-server/v2/server"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
)

// asMainVariable makes the test binary run main instead of the tests, so
// that the start-up tests exercise the real process: its signal handling,
// its exit status, its stderr.
const asMainVariable = "SENFENICO_BRIDGE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainVariable) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// bridgeProcess is the bridge running as a process of its own.
type bridgeProcess struct {
	cmd    *exec.Cmd
	stderr *testkit.Buffer
	done   chan struct{}
	began  time.Time
}

// startProcess runs the bridge with exactly env (plus the switch to main).
func startProcess(t *testing.T, env map[string]string) *bridgeProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{asMainVariable + "=1", "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &bridgeProcess{cmd: cmd, stderr: &testkit.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.Stdout = io.Discard
	p.began = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait returns the exit status and how long the process ran, failing the
// test if it runs longer than limit.
func (p *bridgeProcess) wait(t *testing.T, limit time.Duration) (int, time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), time.Since(p.began)
	case <-time.After(limit):
		t.Fatalf("still running after %v:\n%s", limit, p.stderr.String())
		return -1, 0
	}
}

// waitForLog waits until stderr holds want.
func (p *bridgeProcess) waitForLog(t *testing.T, want string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.stderr.String(), want) {
		select {
		case <-p.done:
			t.Fatalf("exited before logging %q:\n%s", want, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v:\n%s", want, limit, p.stderr.String())
		}
	}
}

// lines returns stderr's non-empty lines.
func (p *bridgeProcess) lines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

// baseEnv is a working embedded-mode configuration on random ports.
func baseEnv(t *testing.T) map[string]string {
	return map[string]string{
		"SENFENICO_WEBHOOK_KEYS": "start-up-key",
		"LISTEN_ADDR":            "127.0.0.1:0",
		"NATS_EMBEDDED_LISTEN":   "127.0.0.1:0",
		"DATA_DIR":               t.TempDir(),
		"LOG_FORMAT":             "json",
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// busyAddr is a loopback address the test holds.
func busyAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// startAuthNATS runs a NATS server that wants user "bridge" with password.
func startAuthNATS(t *testing.T, password string) string {
	t.Helper()
	srv := runNATS(t, server.Options{JetStream: true, Username: "bridge", Password: password})
	return srv.Addr().String()
}

// "A few seconds" on two busy cores: what matters is not the 30 s or more
// these failures used to take.
const startupBound = 10 * time.Second

// Every start-up failure ends at once with one line naming the variable
// that points at the fault: exit 2 for a configuration error, 1 for the
// environment.
func TestStartupFailuresEndAtOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	lockedDir := t.TempDir()
	lockedEnv := baseEnv(t)
	lockedEnv["DATA_DIR"] = lockedDir
	lockedEnv["LOG_FORMAT"] = "json"
	startServe(t, lockedEnv) // a running bridge holds lockedDir

	authServer := startAuthNATS(t, "right-password-4711")

	tests := []struct {
		name     string
		env      map[string]string
		code     int
		variable string
	}{
		{"LISTEN_ADDR without a colon", map[string]string{"LISTEN_ADDR": "8080"}, exitUsage, "LISTEN_ADDR"},
		{"LISTEN_ADDR in use, found before the broker", map[string]string{"LISTEN_ADDR": busyAddr(t), "NATS_URL": "nats://" + closedAddr(t)}, exitFailed, "LISTEN_ADDR"},
		{"NATS_EMBEDDED_LISTEN malformed", map[string]string{"NATS_EMBEDDED_LISTEN": "4222"}, exitUsage, "NATS_EMBEDDED_LISTEN"},
		{"NATS_EMBEDDED_LISTEN in use", map[string]string{"NATS_EMBEDDED_LISTEN": busyAddr(t)}, exitFailed, "NATS_EMBEDDED_LISTEN"},
		{"DATA_DIR is a file", map[string]string{"DATA_DIR": file}, exitFailed, "DATA_DIR"},
		{"DATA_DIR under a file", map[string]string{"DATA_DIR": filepath.Join(file, "data")}, exitFailed, "DATA_DIR"},
		{"DATA_DIR used by another bridge", map[string]string{"DATA_DIR": lockedDir}, exitFailed, "DATA_DIR"},
		{"NATS_URL refuses the credentials", map[string]string{"NATS_URL": "nats://bridge:wrong-password-0815@" + authServer}, exitFailed, "NATS_URL"},
		{"NATS_PASSWORD refused", map[string]string{"NATS_URL": "nats://" + authServer, "NATS_USER": "bridge", "NATS_PASSWORD": "wrong-password-0815"}, exitFailed, "NATS_URL"},
		{"DEBUG_ADDR in use", map[string]string{"DEBUG_ADDR": busyAddr(t)}, exitFailed, "DEBUG_ADDR"},
		{"a configuration error", map[string]string{"NATS_MODE": "fast"}, exitUsage, "NATS_MODE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv(t)
			for k, v := range tt.env {
				env[k] = v
			}
			p := startProcess(t, env)
			code, took := p.wait(t, startupBound)
			lines := p.lines()
			if code != tt.code || len(lines) != 1 || !strings.Contains(lines[0], tt.variable) {
				t.Fatalf("exit %d after %v, stderr:\n%s\nwant exit %d and one line naming %s", code, took, p.stderr.String(), tt.code, tt.variable)
			}
			if strings.Contains(lines[0], "wrong-password-0815") {
				t.Fatalf("the password reached the log: %s", lines[0])
			}
		})
	}
}

// A read-only DATA_DIR is refused at start. Root ignores permission bits,
// so as root (as CI runs) the test mounts a read-only tmpfs.
func TestStartupReadOnlyDataDir(t *testing.T) {
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Fatalf("mount a read-only tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", dir).Run() })
	} else if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	env := baseEnv(t)
	env["DATA_DIR"] = dir
	p := startProcess(t, env)
	code, _ := p.wait(t, startupBound)
	if lines := p.lines(); code != exitFailed || len(lines) != 1 || !strings.Contains(lines[0], "DATA_DIR") {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and one line naming DATA_DIR", code, p.stderr.String())
	}
}

// An unreachable NATS_URL is waited for, with a line every few seconds
// naming it (its password hidden); SIGTERM and SIGINT end the wait at once.
func TestStartupWaitsForNATSURLUntilSignalled(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			env := baseEnv(t)
			env["NATS_URL"] = "nats://bridge:url-password-31337@" + closedAddr(t)
			p := startProcess(t, env)
			p.waitForLog(t, "waiting for the broker", waitLogInterval+startupBound)
			if got := p.stderr.String(); !strings.Contains(got, "NATS_URL") || strings.Contains(got, "url-password-31337") {
				t.Fatalf("the waiting line must name NATS_URL and hide its password:\n%s", got)
			}
			sent := time.Now()
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code, _ := p.wait(t, startupBound)
			if took := time.Since(sent); took > 3*time.Second {
				t.Fatalf("%v took %v to end the wait", sig, took)
			}
			lines := p.lines()
			last := lines[len(lines)-1]
			if code != exitFailed || !strings.Contains(last, "NATS_URL") || strings.Contains(p.stderr.String(), "url-password-31337") {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 1, a last line naming NATS_URL, no password", code, p.stderr.String())
			}
		})
	}
}

// silentNATS speaks just enough of the NATS protocol for a client to
// connect, then stops answering when told: a broker that hangs.
type silentNATS struct {
	ln     net.Listener
	mu     sync.Mutex
	silent bool
}

func startSilentNATS(t *testing.T) *silentNATS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentNATS{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *silentNATS) serve(conn net.Conn) {
	defer conn.Close()
	info, _ := json.Marshal(map[string]any{"server_id": "silent", "version": "2.15.2", "proto": 1, "headers": true, "max_payload": 8 << 20})
	conn.Write([]byte("INFO " + string(info) + "\r\n"))
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		s.mu.Lock()
		silent := s.silent
		s.mu.Unlock()
		if bytes.HasPrefix(line, []byte("PING")) && !silent {
			conn.Write([]byte("PONG\r\n"))
		}
	}
}

func (s *silentNATS) goSilent() {
	s.mu.Lock()
	s.silent = true
	s.mu.Unlock()
}

// A broker that stops answering does not hold the exit: a request waits
// for its confirmation (PUBLISH_TIMEOUT is long here), and the HTTP
// shutdown and the sinks' close both end at SHUTDOWN_TIMEOUT.
func TestShutdownBoundedWhenTheBrokerHangs(t *testing.T) {
	v := vectors.Load().Vectors[0]
	broker := startSilentNATS(t)
	env := baseEnv(t)
	env["SENFENICO_WEBHOOK_KEYS"] = v.Key
	env["NATS_URL"] = "nats://" + broker.ln.Addr().String()
	env["NATS_MODE"] = "core"
	env["PUBLISH_TIMEOUT"] = "60s"
	env["SHUTDOWN_TIMEOUT"] = "1s"
	p := startProcess(t, env)
	p.waitForLog(t, "senfenico-bridge listening", startupBound)
	var addr string
	for _, line := range p.lines() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "senfenico-bridge listening" {
			addr = rec.Addr
		}
	}
	broker.goSilent()
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/senfenico", strings.NewReader(v.Body))
		req.Header.Set(webhook.HeaderName, *v.Header)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	// Let the request reach the broker and wait there.
	time.Sleep(500 * time.Millisecond)
	sent := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 1*time.Second+startupBound)
	if took := time.Since(sent); took > 1*time.Second+2500*time.Millisecond {
		t.Fatalf("exit took %v with SHUTDOWN_TIMEOUT=1s:\n%s", took, p.stderr.String())
	}
}

// Two bridges on one DATA_DIR: the second is refused while the first runs,
// and starts once it stopped.
func TestDataDirBelongsToOneProcess(t *testing.T) {
	env := baseEnv(t)
	first := startProcess(t, env)
	first.waitForLog(t, "senfenico-bridge listening", startupBound)
	second := startProcess(t, env)
	if code, _ := second.wait(t, startupBound); code != exitFailed || !strings.Contains(second.stderr.String(), "DATA_DIR") {
		t.Fatalf("second bridge: exit %d, stderr:\n%s", code, second.stderr.String())
	}
	first.cmd.Process.Signal(syscall.SIGTERM)
	if code, _ := first.wait(t, startupBound); code != exitOK {
		t.Fatalf("first bridge: exit %d:\n%s", code, first.stderr.String())
	}
	third := startProcess(t, env)
	third.waitForLog(t, "senfenico-bridge listening", startupBound)
	third.cmd.Process.Signal(syscall.SIGTERM)
	third.wait(t, startupBound)
}
