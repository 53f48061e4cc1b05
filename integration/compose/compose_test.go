// Package compose checks the container files at the repository root
// (Dockerfile, docker-compose.yml, .dockerignore) against the binary they
// run: no Docker engine is needed, only Debian's docker-compose (v1) to
// validate and normalise the compose file.
package compose

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// testKeys is the webhook key the compose file is interpolated with.
const testKeys = "compose-test-key"

// root is the repository root, relative to this package's directory.
const root = "../.."

// ---- the compose file, as docker-compose normalises it ----

type composeFile struct {
	Services map[string]service `json:"services"`
	Volumes  map[string]any     `json:"volumes"`
}

type service struct {
	Image           string            `json:"image"`
	Build           any               `json:"build"`
	Command         any               `json:"command"`
	Environment     map[string]string `json:"environment"`
	Ports           []any             `json:"ports"`
	Volumes         []any             `json:"volumes"`
	DependsOn       any               `json:"depends_on"`
	Healthcheck     *healthcheck      `json:"healthcheck"`
	StopGracePeriod string            `json:"stop_grace_period"`
	Profiles        []string          `json:"profiles"`
}

type healthcheck struct {
	Test    any  `json:"test"`
	Disable bool `json:"disable"`
}

// portMapping is one published port.
type portMapping struct {
	hostIP, published, target string
}

// composeCmd runs docker-compose on the repository's compose file with
// SENFENICO_WEBHOOK_KEYS set to keys, or unset when keys is empty.
func composeCmd(t *testing.T, keys string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose is not installed; on Debian: apt-get install -y --no-install-recommends docker-compose")
	}
	cmd := exec.Command(bin, append([]string{"-f", "docker-compose.yml"}, args...)...)
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SENFENICO_WEBHOOK_KEYS=") && !strings.HasPrefix(kv, "COMPOSE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if keys != "" {
		cmd.Env = append(cmd.Env, "SENFENICO_WEBHOOK_KEYS="+keys)
	}
	return cmd
}

// loadCompose returns docker-compose.yml after docker-compose has
// validated, interpolated and normalised it. docker-compose v1 prints YAML
// only; the Python it runs on has PyYAML (compose parses with it), so that
// interpreter turns the YAML into JSON and no YAML library is needed here.
func loadCompose(t *testing.T) composeFile {
	t.Helper()
	cmd := composeCmd(t, testKeys, "config")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	normalised, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, stderr.String())
	}
	py := exec.Command(composePython(t), "-c",
		"import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)")
	py.Stdin = bytes.NewReader(normalised)
	stderr.Reset()
	py.Stderr = &stderr
	out, err := py.Output()
	if err != nil {
		t.Fatalf("YAML to JSON with %s: %v\n%s", py.Path, err, stderr.String())
	}
	var f composeFile
	if err := json.Unmarshal(out, &f); err != nil {
		t.Fatalf("decoding normalised compose file: %v\n%s", err, out)
	}
	return f
}

// composePython is the interpreter named by docker-compose's #! line.
func composePython(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	if fields := strings.Fields(strings.TrimPrefix(line, "#!")); strings.HasPrefix(line, "#!") && len(fields) > 0 {
		if filepath.Base(fields[0]) == "env" && len(fields) > 1 {
			return fields[1]
		}
		return fields[0]
	}
	return "python3"
}

func (s service) ports(t *testing.T) []portMapping {
	t.Helper()
	var out []portMapping
	for _, p := range s.Ports {
		switch p := p.(type) {
		case string:
			spec, _, _ := strings.Cut(p, "/")
			parts := strings.Split(spec, ":")
			m := portMapping{target: parts[len(parts)-1]}
			if len(parts) >= 2 {
				m.published = parts[len(parts)-2]
			}
			if len(parts) == 3 {
				m.hostIP = parts[0]
			}
			out = append(out, m)
		case map[string]any:
			m := portMapping{target: fmt.Sprint(p["target"])}
			if v, ok := p["published"]; ok {
				m.published = fmt.Sprint(v)
			}
			if v, ok := p["host_ip"]; ok {
				m.hostIP = fmt.Sprint(v)
			}
			out = append(out, m)
		default:
			t.Fatalf("unexpected port entry %#v", p)
		}
	}
	return out
}

// mounts maps each container path of s to its source (a volume name or a
// host path).
func (s service) mounts(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, v := range s.Volumes {
		switch v := v.(type) {
		case string:
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Fatalf("anonymous volume %q: data would not survive docker compose down", v)
			}
			m[parts[1]] = parts[0]
		case map[string]any:
			m[fmt.Sprint(v["target"])] = fmt.Sprint(v["source"])
		default:
			t.Fatalf("unexpected volume entry %#v", v)
		}
	}
	return m
}

func (s service) list(t *testing.T, v any) []string {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = fmt.Sprint(x)
		}
		return out
	}
	t.Fatalf("unexpected command or test %#v", v)
	return nil
}

func mustService(t *testing.T, f composeFile, name string) service {
	t.Helper()
	s, ok := f.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no %q service", name)
	}
	return s
}

// ---- what the binary reads ----

var envTag = regexp.MustCompile("`env:\"([A-Z0-9_]+)[,\"][^`]*`")

// binaryConfig is the variables the binary reads, from the env struct tags
// of cmd/senfenico-bridge/config.go, and the defaults it has, from the
// configuration table in docs/configuration.md (which cmd/senfenico-bridge's
// TestDocumentedDefaults holds equal to the defaults the binary pre-fills).
func binaryConfig(t *testing.T) (names map[string]bool, defaults map[string]string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "cmd/senfenico-bridge/config.go"))
	if err != nil {
		t.Fatal(err)
	}
	names, defaults = map[string]bool{}, map[string]string{}
	for _, m := range envTag.FindAllStringSubmatch(string(src), -1) {
		names[m[1]] = true
	}
	readme, err := os.ReadFile(filepath.Join(root, "docs/configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| ((?:`[A-Z0-9_]+`(?:, )?)+) \\| `([^`|]*)` \\|")
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		for _, v := range strings.Split(m[1], ", ") {
			defaults[strings.Trim(v, "`")] = m[2]
		}
	}
	for _, want := range []string{"SENFENICO_WEBHOOK_KEYS", "LISTEN_ADDR", "NATS_URL", "KAFKA_BROKERS"} {
		if !names[want] {
			t.Fatalf("found no env tag for %s in config.go: the extraction regexp is out of date", want)
		}
	}
	return names, defaults
}

// setting is the value the bridge container runs with: the compose file's,
// else the image's ENV, else the binary's default.
func setting(t *testing.T, bridge service, df dockerfile, name string) string {
	t.Helper()
	if v, ok := bridge.Environment[name]; ok {
		return v
	}
	if v, ok := df.env[name]; ok {
		return v
	}
	_, defaults := binaryConfig(t)
	return defaults[name]
}

func portOf(t *testing.T, variable, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		t.Fatalf("%s %q has no port: %v", variable, addr, err)
	}
	return port
}

// ---- the Dockerfile ----

type instruction struct {
	cmd  string // upper case
	args string
}

// dockerfile is the final stage of the Dockerfile, plus the build stages.
type dockerfile struct {
	build []instruction // every instruction before the last FROM
	final []instruction // from the last FROM on
	env   map[string]string
}

func loadDockerfile(t *testing.T) dockerfile {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var all []instruction
	var cur strings.Builder
	for line := range strings.SplitSeq(string(src), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		all = append(all, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	last := -1
	for i, in := range all {
		if in.cmd == "FROM" {
			last = i
		}
	}
	if last < 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	df := dockerfile{build: all[:last], final: all[last:], env: map[string]string{}}
	envPair := regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)`)
	for _, in := range df.final {
		if in.cmd == "ENV" {
			for _, m := range envPair.FindAllStringSubmatch(in.args, -1) {
				df.env[m[1]] = strings.Trim(m[2], `"`)
			}
		}
	}
	return df
}

func (df dockerfile) all(stage []instruction, cmd string) []string {
	var out []string
	for _, in := range stage {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// execForm decodes a JSON-array instruction argument, or splits shell form.
func execForm(args string) []string {
	var v []string
	if json.Unmarshal([]byte(args), &v) == nil {
		return v
	}
	return strings.Fields(args)
}

// ---- tests ----

func TestComposeFileIsValid(t *testing.T) {
	var out bytes.Buffer
	cmd := composeCmd(t, testKeys, "config", "-q")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out.String())
	}

	// The key must come from the operator's environment, never a default
	// baked into the file.
	out.Reset()
	cmd = composeCmd(t, "", "config", "-q")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err == nil || !strings.Contains(out.String(), "SENFENICO_WEBHOOK_KEYS") {
		t.Fatalf("docker-compose config without SENFENICO_WEBHOOK_KEYS: err %v, output %q; want a failure naming the variable", err, out.String())
	}
}

func TestBridgeEnvironmentIsReadByTheBinary(t *testing.T) {
	f := loadCompose(t)
	bridge := mustService(t, f, "bridge")
	names, _ := binaryConfig(t)
	if len(bridge.Environment) == 0 {
		t.Fatal("the bridge service sets no environment")
	}
	for name := range bridge.Environment {
		if !names[name] {
			t.Errorf("bridge sets %s, which the binary does not read (config.go)", name)
		}
	}
	if got := bridge.Environment["SENFENICO_WEBHOOK_KEYS"]; got != testKeys {
		t.Errorf("SENFENICO_WEBHOOK_KEYS = %q, want the operator's %q", got, testKeys)
	}
	if bridge.Build == nil {
		t.Error("the bridge service is not built from this repository (build: .)")
	}
	df := loadDockerfile(t)
	for name := range df.env {
		if !names[name] {
			t.Errorf("the Dockerfile sets ENV %s, which the binary does not read", name)
		}
	}
}

func TestBridgePortsAndShutdown(t *testing.T) {
	f := loadCompose(t)
	bridge := mustService(t, f, "bridge")
	df := loadDockerfile(t)
	port := portOf(t, "LISTEN_ADDR", setting(t, bridge, df, "LISTEN_ADDR"))
	ports := bridge.ports(t)
	if !slices.ContainsFunc(ports, func(p portMapping) bool { return p.target == port && p.published != "" }) {
		t.Errorf("the bridge listens on %s (LISTEN_ADDR) but publishes %+v", port, ports)
	}

	shutdown, err := time.ParseDuration(setting(t, bridge, df, "SHUTDOWN_TIMEOUT"))
	if err != nil {
		t.Fatalf("SHUTDOWN_TIMEOUT: %v", err)
	}
	// Docker's default grace period is 10 s; past it the bridge is killed
	// mid-drain and Senfenico sees connections reset.
	grace := 10 * time.Second
	if bridge.StopGracePeriod != "" {
		if grace, err = time.ParseDuration(bridge.StopGracePeriod); err != nil {
			t.Fatalf("stop_grace_period: %v", err)
		}
	}
	if grace <= shutdown {
		t.Errorf("stop_grace_period %s is not longer than SHUTDOWN_TIMEOUT %s", grace, shutdown)
	}
}

func TestBridgeWaitsForHealthyBrokers(t *testing.T) {
	f := loadCompose(t)
	bridge := mustService(t, f, "bridge")
	deps, ok := bridge.DependsOn.(map[string]any)
	if !ok {
		t.Fatalf("bridge depends_on = %#v, want a map with conditions", bridge.DependsOn)
	}
	for _, name := range []string{"nats", "kafka"} {
		dep, _ := deps[name].(map[string]any)
		if dep["condition"] != "service_healthy" {
			t.Errorf("bridge depends on %s with %v, want condition service_healthy", name, deps[name])
		}
		s := mustService(t, f, name)
		if s.Healthcheck == nil || s.Healthcheck.Disable || len(s.list(t, s.Healthcheck.Test)) < 2 {
			t.Errorf("service %s has no healthcheck to wait for", name)
		}
	}
}

func TestNATSService(t *testing.T) {
	f := loadCompose(t)
	bridge := mustService(t, f, "bridge")
	if !slices.Contains(strings.Split(bridge.Environment["SINKS"], ","), "nats") {
		t.Fatalf("SINKS %q does not include nats", bridge.Environment["SINKS"])
	}
	u, err := url.Parse(bridge.Environment["NATS_URL"])
	if err != nil || u.Scheme != "nats" {
		t.Fatalf("NATS_URL %q is not a nats:// URL (%v)", bridge.Environment["NATS_URL"], err)
	}
	nats := mustService(t, f, u.Hostname())
	if !strings.HasPrefix(nats.Image, "nats:") {
		t.Errorf("NATS_URL names service %q, whose image %q is not nats", u.Hostname(), nats.Image)
	}

	// The server runs with the config file mounted from deploy/.
	args := nats.list(t, nats.Command)
	i := slices.IndexFunc(args, func(a string) bool { return a == "--config" || a == "-c" })
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("nats command %q has no --config", args)
	}
	mounts := nats.mounts(t)
	confPath, err := filepath.Abs(filepath.Join(root, "deploy/nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if got := mounts[args[i+1]]; got != confPath {
		t.Fatalf("--config %s is mounted from %q, want %s", args[i+1], got, confPath)
	}
	opts, err := server.ProcessConfigFile(confPath)
	if err != nil {
		t.Fatalf("deploy/nats.conf: %v", err)
	}

	port := u.Port()
	if port == "" {
		port = "4222"
	}
	if strconv.Itoa(opts.Port) != port {
		t.Errorf("NATS_URL port %s, but nats.conf listens on %d", port, opts.Port)
	}
	if !opts.JetStream {
		t.Error("nats.conf does not enable JetStream (the bridge's default NATS_MODE)")
	}
	// A 200 to Senfenico means the event is stored; with the default sync
	// interval a power cut loses acknowledged messages.
	if !opts.SyncAlways {
		t.Error("nats.conf does not set jetstream sync_interval: always")
	}
	if src := mounts[opts.StoreDir]; src == "" || strings.HasPrefix(src, "/") {
		t.Errorf("JetStream store_dir %q is not on a named volume (mounts %v)", opts.StoreDir, mounts)
	} else if _, ok := f.Volumes[src]; !ok {
		t.Errorf("volume %q is not declared", src)
	}
	test := strings.Join(nats.list(t, nats.Healthcheck.Test), " ")
	if opts.HTTPPort <= 0 || !strings.Contains(test, ":"+strconv.Itoa(opts.HTTPPort)+"/healthz") {
		t.Errorf("nats healthcheck %q does not ask the monitoring port %d", test, opts.HTTPPort)
	}
	if !slices.ContainsFunc(nats.ports(t), func(p portMapping) bool { return p.target == port && p.published != "" }) {
		t.Errorf("nats port %s is not published for consumers on the host", port)
	}
}

func TestKafkaService(t *testing.T) {
	f := loadCompose(t)
	bridge := mustService(t, f, "bridge")
	if !slices.Contains(strings.Split(bridge.Environment["SINKS"], ","), "kafka") {
		t.Fatalf("SINKS %q does not include kafka", bridge.Environment["SINKS"])
	}
	brokers := strings.Split(bridge.Environment["KAFKA_BROKERS"], ",")
	if len(brokers) == 0 || brokers[0] == "" {
		t.Fatal("KAFKA_BROKERS is empty")
	}
	for _, b := range brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			t.Fatalf("KAFKA_BROKERS entry %q: %v", b, err)
		}
		kafka := mustService(t, f, host)
		env := kafka.Environment
		if !strings.HasPrefix(kafka.Image, "apache/kafka:") {
			t.Errorf("KAFKA_BROKERS names service %q, whose image %q is not apache/kafka", host, kafka.Image)
		}

		// The broker tells clients to reconnect to its advertised address:
		// the bridge's bootstrap address must be one, and on a listener the
		// broker has.
		advertised := listeners(t, env["KAFKA_ADVERTISED_LISTENERS"])
		name := ""
		for n, addr := range advertised {
			if addr == net.JoinHostPort(host, port) {
				name = n
			}
		}
		if name == "" {
			t.Fatalf("KAFKA_BROKERS %s is not an advertised listener (%s)", b, env["KAFKA_ADVERTISED_LISTENERS"])
		}
		bound := listeners(t, env["KAFKA_LISTENERS"])
		if addr, ok := bound[name]; !ok || portOf(t, "KAFKA_LISTENERS", addr) != port {
			t.Errorf("advertised listener %s=%s is not bound on port %s (KAFKA_LISTENERS %s)", name, b, port, env["KAFKA_LISTENERS"])
		}
		if name == env["KAFKA_CONTROLLER_LISTENER_NAMES"] {
			t.Errorf("KAFKA_BROKERS %s is the controller listener", b)
		}

		roles := strings.Split(env["KAFKA_PROCESS_ROLES"], ",")
		slices.Sort(roles)
		checks := []struct {
			name string
			ok   bool
		}{
			{"KAFKA_NODE_ID is set", env["KAFKA_NODE_ID"] != ""},
			{"KRaft combined roles", slices.Equal(roles, []string{"broker", "controller"})},
			{"controller quorum is this node", env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == env["KAFKA_NODE_ID"]+"@"+host+":"+portOf(t, "KAFKA_LISTENERS", bound[env["KAFKA_CONTROLLER_LISTENER_NAMES"]])},
			{"auto topic creation off", env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"},
			{"offsets topic replication 1", env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"},
			{"transaction log replication 1", env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"},
			{"bridge topic replication fits one broker", setting(t, bridge, loadDockerfile(t), "KAFKA_TOPIC_REPLICATION") == "1"},
		}
		for _, c := range checks {
			if !c.ok {
				t.Errorf("kafka: want %s", c.name)
			}
		}
		if id, err := base64.RawURLEncoding.DecodeString(env["CLUSTER_ID"]); env["CLUSTER_ID"] != "" && (err != nil || len(id) != 16) {
			t.Errorf("CLUSTER_ID %q is not a Kafka UUID (16 bytes, URL-safe base64, no padding)", env["CLUSTER_ID"])
		}
		dir := env["KAFKA_LOG_DIRS"]
		if src := kafka.mounts(t)[dir]; dir == "" || src == "" || strings.HasPrefix(src, "/") {
			t.Errorf("KAFKA_LOG_DIRS %q is not on a named volume", dir)
		}
	}
}

// listeners parses NAME://host:port,... into name → host:port.
func listeners(t *testing.T, list string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for l := range strings.SplitSeq(list, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
		if !ok {
			t.Fatalf("listener %q is not NAME://host:port", l)
		}
		m[name] = addr
	}
	return m
}

func TestDockerfile(t *testing.T) {
	df := loadDockerfile(t)
	_, defaults := binaryConfig(t)

	from := strings.Fields(df.all(df.final, "FROM")[0])[0]
	users := df.all(df.final, "USER")
	switch {
	case len(users) > 0:
		u, _, _ := strings.Cut(users[len(users)-1], ":")
		if u == "root" || u == "0" {
			t.Errorf("the final stage runs as USER %s", users[len(users)-1])
		}
	case !strings.HasSuffix(from, ":nonroot"):
		t.Errorf("the final stage (%s) sets no USER and is not a :nonroot image", from)
	}

	entry := execForm(df.all(df.final, "ENTRYPOINT")[0])
	binary := entry[0]

	// HEALTHCHECK: the image has no curl, so it runs the binary's own probe.
	hc := df.all(df.final, "HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("want one HEALTHCHECK in the final stage, have %d", len(hc))
	}
	_, cmd, ok := strings.Cut(hc[0], "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %q has no CMD", hc[0])
	}
	probe := execForm(cmd)
	switch {
	case strings.Contains(cmd, "/readyz"):
	case len(probe) == 2 && probe[0] == binary && probe[1] == "healthcheck":
		src, err := os.ReadFile(filepath.Join(root, "cmd/senfenico-bridge/cli_healthcheck.go"))
		if err != nil || !bytes.Contains(src, []byte(`subcommands["healthcheck"]`)) || !bytes.Contains(src, []byte(`"/readyz"`)) {
			t.Errorf("HEALTHCHECK runs %q, but no healthcheck subcommand probing /readyz is registered (%v)", probe, err)
		}
	default:
		t.Errorf("HEALTHCHECK %q neither asks /readyz nor runs %s healthcheck", cmd, binary)
	}

	// EXPOSE the ports the binary listens on in this image.
	exposed := strings.Fields(strings.Join(df.all(df.final, "EXPOSE"), " "))
	for _, v := range []string{"LISTEN_ADDR", "NATS_EMBEDDED_LISTEN"} {
		addr, ok := df.env[v]
		if !ok {
			addr = defaults[v]
		}
		if p := portOf(t, v, addr); !slices.Contains(exposed, p) && !slices.Contains(exposed, p+"/tcp") {
			t.Errorf("%s is %s but EXPOSE has %v", v, addr, exposed)
		}
	}

	// The embedded server's store is a volume the user can write.
	dataDir := df.env["DATA_DIR"]
	volumes := strings.Fields(strings.Join(df.all(df.final, "VOLUME"), " "))
	if dataDir == "" || !slices.ContainsFunc(volumes, func(v string) bool { return strings.Trim(v, `[]",`) == dataDir }) {
		t.Errorf("DATA_DIR %q is not a VOLUME (%v)", dataDir, volumes)
	}
	chowned := false
	for _, c := range df.all(df.final, "COPY") {
		f := strings.Fields(c)
		if f[len(f)-1] == dataDir && slices.ContainsFunc(f, func(a string) bool {
			return strings.HasPrefix(a, "--chown=") && !strings.HasPrefix(a, "--chown=0") && !strings.HasPrefix(a, "--chown=root")
		}) {
			chowned = true
		}
	}
	if !chowned {
		t.Errorf("DATA_DIR %s is not copied in with --chown to the non-root user: the volume would be root's", dataDir)
	}

	// The binary the ENTRYPOINT runs is the one the build stage builds.
	copied := false
	for _, c := range df.all(df.final, "COPY") {
		f := strings.Fields(c)
		if f[len(f)-1] == binary && strings.HasPrefix(f[0], "--from=") {
			copied = true
			checkBuildStage(t, df, f[len(f)-2])
		}
	}
	if !copied {
		t.Errorf("ENTRYPOINT %s is not copied from a build stage", binary)
	}
}

// checkBuildStage checks the stage that builds out: a static binary of the
// command, with a Go new enough for go.mod, modules downloaded in their own
// layer.
func checkBuildStage(t *testing.T, df dockerfile, out string) {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	from := strings.Fields(df.all(df.build, "FROM")[0])[0]
	v := regexp.MustCompile(`^golang:(\d+)\.(\d+)`).FindStringSubmatch(from)
	if v == nil {
		t.Fatalf("build stage %s is not golang:<major>.<minor>", from)
	}
	if atoi(v[1])*1000+atoi(v[2]) < atoi(string(m[1]))*1000+atoi(string(m[2])) {
		t.Errorf("build image %s is older than go.mod's go %s.%s (the image does not download toolchains)", from, m[1], m[2])
	}

	order := map[string]int{}
	for i, in := range df.build {
		switch {
		case in.cmd == "COPY" && strings.Contains(in.args, "go.mod") && strings.Contains(in.args, "go.sum"):
			order["mod"] = i + 1
		case in.cmd == "RUN" && strings.Contains(in.args, "go mod download"):
			order["download"] = i + 1
		case in.cmd == "COPY" && strings.HasPrefix(in.args, ". "):
			order["source"] = i + 1
		case in.cmd == "RUN" && strings.Contains(in.args, "go build"):
			order["build"] = i + 1
			checkBuildCommand(t, in.args, out)
		}
	}
	if !(order["mod"] > 0 && order["mod"] < order["download"] && order["download"] < order["source"] && order["source"] < order["build"]) {
		t.Errorf("want COPY go.mod go.sum, RUN go mod download, COPY . ., RUN go build in that order; got positions %v", order)
	}
}

func checkBuildCommand(t *testing.T, run, out string) {
	t.Helper()
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-o " + out} {
		if !strings.Contains(run, want) {
			t.Errorf("go build %q lacks %s", run, want)
		}
	}
	f := strings.Fields(run)
	pkg := f[len(f)-1]
	src, err := os.ReadFile(filepath.Join(root, pkg, "main.go"))
	if err != nil || !bytes.Contains(src, []byte("\npackage main")) && !bytes.HasPrefix(src, []byte("package main")) {
		t.Errorf("go build target %s is not the main package (%v)", pkg, err)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestDockerignoreKeepsWhatTheBuildNeeds checks every file the binary is
// compiled or embedded from against .dockerignore, so that the image build
// cannot fail on a file excluded from its context.
func TestDockerignoreKeepsWhatTheBuildNeeds(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for l := range strings.SplitSeq(string(src), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, p := range []string{".git", ".env"} {
		if !ignored(patterns, p) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}

	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	// -e: list what resolves even while a package of the tree is mid-edit.
	cmd := exec.Command("go", "list", "-e", "-deps", "-f",
		`{{if not .Standard}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/senfenico-bridge")
	cmd.Dir = abs
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := []string{"go.mod", "go.sum"}
	for f := range strings.SplitSeq(string(outb), "\n") {
		if rel, err := filepath.Rel(abs, f); f != "" && err == nil && !strings.HasPrefix(rel, "..") {
			needed = append(needed, filepath.ToSlash(rel))
		}
	}
	if len(needed) < 5 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, f := range needed {
		if ignored(patterns, f) {
			t.Errorf(".dockerignore excludes %s, which the build needs", f)
		}
	}
}

// ignored applies .dockerignore patterns the way Docker does for the forms
// this repository uses: path.Match on the path or any parent, a leading **/
// matching at any depth, ! re-including, the last match winning.
func ignored(patterns []string, file string) bool {
	out := false
	for _, p := range patterns {
		negate := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		p = strings.TrimSuffix(p, "/")
		anyDepth := strings.HasPrefix(p, "**/")
		p = strings.TrimPrefix(p, "**/")
		parts := strings.Split(file, "/")
		for i := range parts {
			for j := i + 1; j <= len(parts); j++ {
				if i > 0 && !anyDepth {
					break
				}
				if ok, _ := path.Match(p, strings.Join(parts[i:j], "/")); ok {
					out = !negate
				}
			}
		}
	}
	return out
}
