// Package image builds the container image from the Dockerfile with
// buildah (scripts/build-image, as a user without Docker would) and runs
// the binary from it.
//
// No container can run on this project's machines (the OCI runtime's setup
// is refused), so the test mounts the image's filesystem with buildah and
// runs the ENTRYPOINT the way a container runtime would without namespaces:
// chrooted into that filesystem, as the image's USER, with the image's
// environment. That still proves what a container needs: the binary runs
// with nothing else in the image (no C library, no shell), the user can
// write the /data it is given, and the CA certificates are where Go looks.
//
// The images live in a containers-storage of the test's own, so that
// nothing is left behind and no other build is disturbed. CI installs
// buildah (scripts/test); without it the test fails.
package image

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
)

// root is the repository root, relative to this package's directory.
const root = "../.."

const (
	imageTag = "localhost/senfenico-bridge:image-test"
	// revision is passed as the REVISION build argument; version prints
	// its first 12 characters.
	revision = "0123456789abcdef0123456789abcdef01234567"
	testKey  = "image-test-key"
)

// imageConfig is the part of the image's Docker config this test checks.
type imageConfig struct {
	User         string              `json:"User"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	Env          []string            `json:"Env"`
	Entrypoint   []string            `json:"Entrypoint"`
	Cmd          []string            `json:"Cmd"`
	Volumes      map[string]struct{} `json:"Volumes"`
	Healthcheck  *struct {
		Test []string `json:"Test"`
	} `json:"Healthcheck"`
}

func (c imageConfig) env() map[string]string {
	m := map[string]string{}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestImage(t *testing.T) {
	if os.Geteuid() != 0 {
		// buildah's storage and the chroot need root; CI runs as root.
		t.Skip("building and mounting the image needs root (CI runs as root)")
	}
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Fatal("buildah is not installed (scripts/test installs it; on Debian: apt-get install -y --no-install-recommends buildah)")
	}
	s := newStore(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "scripts/build-image")
	build.Dir = root
	build.Env = append(s.environ(), "TAG="+imageTag, "REVISION="+revision)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-image: %v\n%s", err, out)
	}

	var inspected struct {
		Docker struct {
			Config imageConfig `json:"config"`
		} `json:"Docker"`
	}
	if err := json.Unmarshal(s.buildah(t, "inspect", "--type", "image", imageTag), &inspected); err != nil {
		t.Fatalf("buildah inspect: %v", err)
	}
	cfg := inspected.Docker.Config
	if len(cfg.Entrypoint) == 0 {
		t.Fatalf("the image has no ENTRYPOINT: %+v", cfg)
	}

	t.Run("metadata", func(t *testing.T) { checkMetadata(t, cfg) })

	ctr := strings.TrimSpace(string(s.buildah(t, "from", "--pull=never", imageTag)))
	rootfs := strings.TrimSpace(string(s.buildah(t, "mount", ctr)))
	t.Cleanup(func() { s.buildah(t, "umount", ctr) })

	t.Run("filesystem", func(t *testing.T) { checkFilesystem(t, rootfs) })
	if t.Failed() {
		return
	}
	t.Run("version", func(t *testing.T) {
		out, err := inImage(context.Background(), rootfs, cfg, nil, slices.Concat(cfg.Entrypoint, []string{"version"})...).CombinedOutput()
		if err != nil {
			t.Fatalf("version: %v\n%s", err, out)
		}
		if !strings.HasPrefix(string(out), "senfenico-bridge ") || !strings.Contains(string(out), " rev "+revision[:12]+" ") {
			t.Errorf("version printed %q, want the REVISION build argument %s", out, revision[:12])
		}
	})
	t.Run("serve", func(t *testing.T) { checkServe(t, rootfs, cfg) })
}

// checkMetadata checks what docker-compose.yml and the Helm chart rely on.
func checkMetadata(t *testing.T, cfg imageConfig) {
	if cfg.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532 (the chart's runAsUser and runAsGroup)", cfg.User)
	}
	if got := slices.Sorted(maps.Keys(cfg.ExposedPorts)); !slices.Equal(got, []string{"4222/tcp", "8080/tcp"}) {
		t.Errorf("ExposedPorts = %v, want 4222/tcp and 8080/tcp", got)
	}
	env := cfg.env()
	for k, v := range map[string]string{"LISTEN_ADDR": ":8080", "DATA_DIR": "/data", "NATS_EMBEDDED_LISTEN": "0.0.0.0:4222"} {
		if env[k] != v {
			t.Errorf("Env %s = %q, want %q", k, env[k], v)
		}
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/senfenico-bridge"}) || !slices.Equal(cfg.Cmd, []string{"serve"}) {
		t.Errorf("Entrypoint %q Cmd %q, want [/senfenico-bridge] [serve]", cfg.Entrypoint, cfg.Cmd)
	}
	if _, ok := cfg.Volumes["/data"]; !ok || len(cfg.Volumes) != 1 {
		t.Errorf("Volumes = %v, want /data", slices.Collect(maps.Keys(cfg.Volumes)))
	}
	if cfg.Healthcheck == nil || !slices.Equal(cfg.Healthcheck.Test, []string{"CMD", "/senfenico-bridge", "healthcheck"}) {
		t.Errorf("Healthcheck = %+v, want CMD /senfenico-bridge healthcheck (is the image in the docker format?)", cfg.Healthcheck)
	}
}

// checkFilesystem checks that the image holds the binary and what it needs
// at run time, and nothing else: the final stage is FROM scratch.
func checkFilesystem(t *testing.T, rootfs string) {
	entries, err := os.ReadDir(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"data", "etc", "senfenico-bridge", "tmp"}; !slices.Equal(names, want) {
		t.Errorf("the image's / holds %v, want %v", names, want)
	}

	bin, err := elf.Open(filepath.Join(rootfs, "senfenico-bridge"))
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	libs, _ := bin.ImportedLibraries()
	interp := slices.ContainsFunc(bin.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
	if interp || len(libs) > 0 {
		t.Errorf("the binary is linked dynamically (interpreter %v, libraries %v): the image has no C library", interp, libs)
	}

	owned := func(path string, mode fs.FileMode, uid uint32) {
		t.Helper()
		fi, err := os.Stat(filepath.Join(rootfs, path))
		if err != nil {
			t.Error(err)
			return
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode()&(fs.ModePerm|fs.ModeSticky) != mode || st.Uid != uid || st.Gid != uid {
			t.Errorf("%s is %v owned by %d:%d, want a directory %v owned by %d:%d", path, fi.Mode(), st.Uid, st.Gid, fs.ModeDir|mode, uid, uid)
		}
	}
	owned("data", 0o755, 65532)
	owned("tmp", fs.ModeSticky|0o777, 0)

	pem, err := os.ReadFile(filepath.Join(rootfs, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil || !x509.NewCertPool().AppendCertsFromPEM(pem) {
		t.Errorf("no CA certificates where Go looks for them: %v", err)
	}
	passwd, err := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
	if err != nil || !strings.Contains(string(passwd), "\nnonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user 65532 (%v):\n%s", err, passwd)
	}
	group, err := os.ReadFile(filepath.Join(rootfs, "etc/group"))
	if err != nil || !strings.Contains(string(group), "\nnonroot:x:65532:") {
		t.Errorf("/etc/group has no nonroot group 65532 (%v):\n%s", err, group)
	}
}

// checkServe runs the image's ENTRYPOINT and CMD with the image's defaults,
// except the two listen addresses (free loopback ports, since other tests
// may run at once) and the key, which the image must not have: the embedded
// NATS server keeps its store in the image's /data.
func checkServe(t *testing.T, rootfs string, cfg imageConfig) {
	httpPort, natsPort := testkit.FreePortString(t), testkit.FreePortString(t)
	env := map[string]string{
		"SENFENICO_WEBHOOK_KEYS": testKey,
		"LISTEN_ADDR":            "127.0.0.1:" + httpPort,
		"NATS_EMBEDDED_LISTEN":   "127.0.0.1:" + natsPort,
	}
	if _, ok := cfg.env()["SENFENICO_WEBHOOK_KEYS"]; ok {
		t.Fatal("the image sets SENFENICO_WEBHOOK_KEYS")
	}
	var logs testkit.Buffer
	serve := inImage(context.Background(), rootfs, cfg, env, slices.Concat(cfg.Entrypoint, cfg.Cmd)...)
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			serve.Process.Kill()
			<-exited
		}
	})

	base := "http://127.0.0.1:" + httpPort
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := client.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("serve exited before it was ready: %v\n%s", err, logs.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 60s:\n%s", logs.String())
		}
	}

	// A notification signed here, as Senfenico signs it.
	reference := randomReference(t)
	data := fmt.Sprintf(`{"reference": %q, "amount": 2000, "fees": 30.5, "currency": "XOF", "status": "success", "live_mode": false}`, reference)
	quoted, _ := json.Marshal(data)
	body := fmt.Sprintf(`{"event": "charge.success", "data": %s}`, quoted)
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/senfenico", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(webhook.HeaderName, webhook.Sign([]byte(body), testKey))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST: %v\n%s", err, logs.String())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST answered %d, want 200\n%s", resp.StatusCode, logs.String())
	}

	// The image's own tools, as docs/docker.md runs them with docker
	// compose exec: send, and the HEALTHCHECK's probe.
	if out, err := inImage(context.Background(), rootfs, cfg, env, slices.Concat(cfg.Entrypoint, []string{"send", "charge.success"})...).CombinedOutput(); err != nil {
		t.Errorf("send charge.success: %v\n%s", err, out)
	}
	if cfg.Healthcheck != nil && len(cfg.Healthcheck.Test) > 1 && cfg.Healthcheck.Test[0] == "CMD" {
		probe := cfg.Healthcheck.Test[1:]
		if out, err := inImage(context.Background(), rootfs, cfg, env, probe...).CombinedOutput(); err != nil {
			t.Errorf("HEALTHCHECK %q: %v\n%s", probe, err, out)
		}
	}

	// The event is in the embedded server's stream, read back as the
	// reader the bridge wrote the URL of into the image's /data.
	readerURL, err := os.ReadFile(filepath.Join(rootfs, "data", "readers", "reader.url"))
	if err != nil {
		t.Fatalf("the bridge wrote no reader URL into /data: %v\n%s", err, logs.String())
	}
	if !readsReference(t, strings.TrimSpace(string(readerURL)), reference) {
		t.Errorf("the event %s is not in the stream", reference)
	}

	// docker stop sends SIGTERM; the bridge must drain and exit 0.
	serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("serve still running 30s after SIGTERM\n%s", logs.String())
	}
}

// readsReference reports whether the SENFENICO stream holds a message with
// reference in its data.
func readsReference(t *testing.T, url, reference string) bool {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(10*time.Second))
	if err != nil {
		t.Fatalf("connect as the reader: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "SENFENICO", jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	found := false
	for m := range batch.Messages() {
		found = found || strings.Contains(string(m.Data()), reference)
	}
	if err := batch.Error(); err != nil {
		t.Errorf("fetch: %v", err)
	}
	return found
}

// inImage returns a command that runs argv (argv[0] a path in the image)
// the way a container runtime would start it, less the namespaces:
// chrooted into rootfs, as the image's USER, with the image's environment
// and env on top.
func inImage(ctx context.Context, rootfs string, cfg imageConfig, env map[string]string, argv ...string) *exec.Cmd {
	uid, gid := parseUser(cfg.User)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	vars := cfg.env()
	maps.Copy(vars, env)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		cmd.Env = append(cmd.Env, k+"="+vars[k])
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     rootfs,
		Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
		Setpgid:    true,
	}
	return cmd
}

// parseUser reads USER's uid:gid; anything else is 0:0, which makes the
// metadata check's failure the one to read.
func parseUser(user string) (uint32, uint32) {
	u, g, _ := strings.Cut(user, ":")
	uid, _ := strconv.ParseUint(u, 10, 32)
	gid, _ := strconv.ParseUint(g, 10, 32)
	return uint32(uid), uint32(gid)
}

func randomReference(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// store is a containers-storage of the test's own, which buildah (and
// scripts/build-image) use through CONTAINERS_STORAGE_CONF.
type store struct {
	dir, conf string
}

func newStore(t *testing.T) *store {
	t.Helper()
	dir := t.TempDir()
	s := &store{dir: dir, conf: filepath.Join(dir, "storage.conf")}
	conf := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(dir, "graph"), filepath.Join(dir, "run"))
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		for _, args := range [][]string{{"rm", "--all"}, {"rmi", "--all", "--force"}} {
			cmd := exec.Command("buildah", args...)
			cmd.Env = s.environ()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("buildah %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		s.unmountLeftovers(t)
	})
	return s
}

func (s *store) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONTAINERS_STORAGE_CONF=") {
			env = append(env, kv)
		}
	}
	return append(env, "CONTAINERS_STORAGE_CONF="+s.conf)
}

// buildah runs buildah on the test's storage and returns its stdout.
func (s *store) buildah(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("buildah", args...)
	cmd.Env = s.environ()
	var stderr testkit.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// unmountLeftovers detaches whatever the storage left mounted (after a
// failure half-way), so that the temporary directory can be removed.
func (s *store) unmountLeftovers(t *testing.T) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 1 && strings.HasPrefix(fields[1], s.dir+"/") {
			points = append(points, fields[1])
		}
	}
	// Deepest first.
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}
