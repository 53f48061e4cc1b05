package check

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// helmVersion is the Helm the chart is checked with; the test installs it
// into the repository's .bin when it is missing or another version.
const helmVersion = "v3.22.0"

var (
	chartDir = filepath.Join("..", "senfenico-bridge")
	repoRoot = filepath.Join("..", "..", "..")

	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helm returns the path of a Helm binary of helmVersion, installing it
// with go install on the first call if needed.
func helm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		bin, err := filepath.Abs(filepath.Join(repoRoot, ".bin"))
		if err != nil {
			helmErr = err
			return
		}
		helmPath = filepath.Join(bin, "helm")
		if out, err := exec.Command(helmPath, "version", "--short").Output(); err == nil && strings.HasPrefix(string(out), helmVersion+"+") {
			return
		}
		cmd := exec.Command("go", "install", "helm.sh/helm/v3/cmd/helm@"+helmVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			helmErr = &installError{err: err, out: string(out)}
		}
	})
	if helmErr != nil {
		t.Fatalf("install helm %s: %v", helmVersion, helmErr)
	}
	return helmPath
}

type installError struct {
	err error
	out string
}

func (e *installError) Error() string { return e.err.Error() + "\n" + e.out }

// runHelm runs helm with args and returns its stdout, or fails the test
// with both outputs.
func runHelm(t *testing.T, args ...string) []byte {
	t.Helper()
	out, stderr, err := tryHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

func tryHelm(t *testing.T, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	var outBuf, errBuf bytes.Buffer
	cmd := exec.Command(helm(t), args...)
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	// Helm writes caches and plugins under $HOME; keep them out of the
	// developer's home and out of the repository.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	err = cmd.Run()
	return outBuf.Bytes(), errBuf.Bytes(), err
}

// render lints the chart strictly with the given helm value arguments, then
// renders and decodes it.
func render(t *testing.T, chart string, valueArgs ...string) []Object {
	t.Helper()
	runHelm(t, append([]string{"lint", "--strict", chart}, valueArgs...)...)
	manifests := runHelm(t, append([]string{"template", "bridge", chart, "--namespace", "payments"}, valueArgs...)...)
	objects, err := Decode(manifests)
	if err != nil {
		t.Fatalf("rendered manifests do not decode strictly:\n%v", err)
	}
	return objects
}

// TestExamples renders every documented values file and checks what the
// production guide promises of each topology.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir, "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files under examples/ (%v)", err)
	}
	want := map[string]struct {
		replicas int32
		embedded bool
		env      map[string]string
	}{
		"single-embedded.yaml": {replicas: 1, embedded: true, env: map[string]string{"SINKS": "nats", "DATA_DIR": "/data"}},
		"try-chart-keys.yaml":  {replicas: 1, embedded: true, env: map[string]string{"SINKS": "nats"}},
		"nats-cluster.yaml": {replicas: 3, env: map[string]string{
			"SINKS": "nats", "NATS_STREAM_REPLICAS": "3", "NATS_MODE": "jetstream",
			"NATS_CREDS": "/etc/senfenico-bridge/nats-creds/nats.creds", "NATS_TLS_CA": "/etc/senfenico-bridge/nats-tls/ca.crt",
		}},
		"kafka-cluster.yaml": {replicas: 3, env: map[string]string{
			"SINKS": "kafka", "KAFKA_TOPIC_REPLICATION": "3", "KAFKA_TOPIC_MIN_ISR": "2", "KAFKA_SASL_MECHANISM": "scram-sha-512",
		}},
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("examples/%s has no expectations in this test: add them", name)
			}
			objects := render(t, chartDir, "-f", file)
			dep := deployment(t, objects)
			if got := *dep.Spec.Replicas; got != w.replicas {
				t.Errorf("replicas = %d, want %d", got, w.replicas)
			}
			checkPod(t, dep)
			env := envOf(dep.Spec.Template.Spec.Containers[0])
			for k, v := range w.env {
				if env[k] != v {
					t.Errorf("env %s = %q, want %q", k, env[k], v)
				}
			}
			if w.embedded {
				if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
					t.Errorf("embedded broker with strategy %q: two pods would open one store during a rollout", dep.Spec.Strategy.Type)
				}
				if _, ok := env["NATS_URL"]; ok {
					t.Error("embedded topology sets NATS_URL")
				}
			} else {
				if _, ok := env["DATA_DIR"]; ok {
					t.Error("external broker with a DATA_DIR")
				}
				if !has(objects, "PodDisruptionBudget") {
					t.Error("several replicas without a PodDisruptionBudget")
				}
			}
		})
	}
}

// checkPod asserts what every topology needs of its pods.
func checkPod(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	pod := dep.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod may run as root")
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem is writable")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("privilege escalation allowed")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want GET /readyz", c.ReadinessProbe)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v, want GET /healthz", c.LivenessProbe)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("no memory request or limit")
	}
	var keys *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "SENFENICO_WEBHOOK_KEYS" {
			keys = &c.Env[i]
		}
	}
	if keys == nil || keys.Value != "" || keys.ValueFrom == nil || keys.ValueFrom.SecretKeyRef == nil {
		t.Errorf("SENFENICO_WEBHOOK_KEYS = %+v, want it from a Secret", keys)
	}
	if dep.Spec.Template.Annotations["prometheus.io/scrape"] != "true" {
		t.Error("no Prometheus scrape annotation")
	}
}

// TestRefusedValues checks that the chart refuses values that would deploy
// an unsafe topology, with a message that says why.
func TestRefusedValues(t *testing.T) {
	keys := []string{"--set", "webhookKeys.keys={k}"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "embedded broker with three replicas", args: append([]string{"--set", "replicaCount=3"}, keys...), want: "embedded NATS server"},
		{name: "embedded broker with a replicated stream", args: append([]string{"--set", "nats.streamReplicas=3"}, keys...), want: "needs a NATS cluster"},
		{name: "no webhook key", want: "webhookKeys"},
		{name: "kafka without brokers", args: append([]string{"--set", "sinks=kafka"}, keys...), want: "kafka.brokers"},
		{name: "min ISR above replication", args: append([]string{"--set", "sinks=kafka", "--set", "kafka.brokers={k:9092}", "--set", "kafka.topicMinISR=2"}, keys...), want: "topicMinISR"},
		{name: "unknown sink", args: append([]string{"--set", "sinks=redis"}, keys...), want: "/sinks"},
		{name: "six stream replicas", args: append([]string{"--set", "nats.url=nats://n:4222", "--set", "nats.streamReplicas=6"}, keys...), want: "/nats/streamReplicas"},
		{name: "no replica", args: append([]string{"--set", "replicaCount=0"}, keys...), want: "/replicaCount"},
		{name: "misspelt top-level key", args: append([]string{"--set", "replicaCont=3"}, keys...), want: "'replicaCont' not allowed"},
		{name: "misspelt nested key", args: append([]string{"--set", "nats.url=nats://n:4222", "--set", "nats.streamReplica=3"}, keys...), want: "'streamReplica' not allowed"},
		{name: "unknown NATS mode", args: append([]string{"--set", "nats.mode=fast"}, keys...), want: "/nats/mode"},
		{name: "broker without port", args: append([]string{"--set", "sinks=kafka", "--set", "kafka.brokers={kafka}"}, keys...), want: "/kafka/brokers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := tryHelm(t, append([]string{"template", "bridge", chartDir}, tc.args...)...)
			if err == nil || !strings.Contains(string(stderr), tc.want) {
				t.Fatalf("helm template %v: err %v, stderr %q; want a failure mentioning %q", tc.args, err, stderr, tc.want)
			}
		})
	}
}

// TestServiceMonitor renders the optional ServiceMonitor and decodes it
// against the Prometheus Operator's types.
func TestServiceMonitor(t *testing.T) {
	objects := render(t, chartDir, "--set", "webhookKeys.keys={k}", "--set", "metrics.serviceMonitor.enabled=true")
	if !has(objects, "ServiceMonitor") {
		t.Fatal("no ServiceMonitor rendered")
	}
}

// TestMisspeltFieldFails proves the check can fail: the chart with one
// field misspelt renders and lints, but does not decode.
func TestMisspeltFieldFails(t *testing.T) {
	tests := []struct {
		name, template, from, to string
	}{
		{name: "deployment probe", template: "deployment.yaml", from: "readinessProbe:", to: "readinesProbe:"},
		{name: "service port", template: "service.yaml", from: "targetPort:", to: "targetport:"},
		{name: "pdb selector", template: "pdb.yaml", from: "minAvailable:", to: "minAvailible:"},
		{name: "servicemonitor endpoint", template: "servicemonitor.yaml", from: "interval:", to: "intervall:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chart := copyChart(t)
			path := filepath.Join(chart, "templates", tc.template)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(src, []byte(tc.from)) {
				t.Fatalf("%s has no %q to misspell", tc.template, tc.from)
			}
			if err := os.WriteFile(path, bytes.Replace(src, []byte(tc.from), []byte(tc.to), 1), 0o644); err != nil {
				t.Fatal(err)
			}
			manifests := runHelm(t, "template", "bridge", chart, "-f", filepath.Join(chart, "examples", "nats-cluster.yaml"))
			_, err = Decode(manifests)
			if err == nil || !strings.Contains(err.Error(), "unknown field") || !strings.Contains(err.Error(), strings.TrimSuffix(tc.to, ":")) {
				t.Fatalf("Decode = %v, want an unknown field error naming %q", err, tc.to)
			}
		})
	}
}

// TestDecodeRefuses covers what no chart edit above reaches.
func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{name: "unknown kind", doc: "apiVersion: v1\nkind: Podd\nmetadata:\n  name: x\n", want: "Podd"},
		{name: "duplicate field", doc: "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  name: z\n", want: "already set"},
		{name: "wrong type", doc: "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports:\n  - port: eighty\n", want: "port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte("---\n# Source: test\n" + tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func copyChart(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "senfenico-bridge")
	if err := os.CopyFS(dst, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func deployment(t *testing.T, objects []Object) *appsv1.Deployment {
	t.Helper()
	for _, o := range objects {
		if d, ok := o.Object.(*appsv1.Deployment); ok {
			return d
		}
	}
	t.Fatal("no Deployment rendered")
	return nil
}

func envOf(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func has(objects []Object, kind string) bool {
	return slices.ContainsFunc(objects, func(o Object) bool { return o.Kind.Kind == kind })
}
