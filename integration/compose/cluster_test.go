package compose

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// The "cluster" profile: three NATS nodes, two bridges, one load balancer.
const clusterProfile = "cluster"

var (
	clusterNodes   = []string{"nats-1", "nats-2", "nats-3"}
	clusterBridges = []string{"bridge-1", "bridge-2"}
)

// TestProfilesKeepTheDefaultStack checks that the cluster's services start
// only with their profile, so that `docker compose up` runs what it ran
// before, and that each is in the profile.
func TestProfilesKeepTheDefaultStack(t *testing.T) {
	f := loadCompose(t)
	for _, name := range []string{"nats", "kafka", "bridge"} {
		if p := mustService(t, f, name).Profiles; len(p) != 0 {
			t.Errorf("service %s has profiles %v: `docker compose up` would no longer start it", name, p)
		}
	}
	for _, name := range append(append(slices.Clone(clusterNodes), clusterBridges...), "lb") {
		if p := mustService(t, f, name).Profiles; !slices.Equal(p, []string{clusterProfile}) {
			t.Errorf("service %s has profiles %v, want [%s]", name, p, clusterProfile)
		}
	}
}

// TestClusterNodes checks each node's configuration as nats-server reads
// it: clustered JetStream, synced on every write, each node with its own
// name and store, routes to all three.
func TestClusterNodes(t *testing.T) {
	f := loadCompose(t)
	confPath, err := filepath.Abs(filepath.Join(root, "deploy/nats-cluster.conf"))
	if err != nil {
		t.Fatal(err)
	}
	stores := map[string]string{}
	published := map[string]string{}
	for _, name := range clusterNodes {
		t.Run(name, func(t *testing.T) {
			node := mustService(t, f, name)
			if !strings.HasPrefix(node.Image, "nats:") {
				t.Fatalf("image %q is not nats", node.Image)
			}
			args := node.list(t, node.Command)
			i := slices.IndexFunc(args, func(a string) bool { return a == "--config" || a == "-c" })
			if i < 0 || i+1 >= len(args) {
				t.Fatalf("command %q has no --config", args)
			}
			mounts := node.mounts(t)
			if got := mounts[args[i+1]]; got != confPath {
				t.Fatalf("--config %s is mounted from %q, want %s", args[i+1], got, confPath)
			}
			// The file takes the node's name from the container's
			// environment, as nats-server resolves it.
			for k, v := range node.Environment {
				t.Setenv(k, v)
			}
			opts, err := server.ProcessConfigFile(confPath)
			if err != nil {
				t.Fatalf("deploy/nats-cluster.conf: %v", err)
			}
			if opts.ServerName != name {
				t.Errorf("server_name %q, want the service name %q (the cluster needs distinct names)", opts.ServerName, name)
			}
			if !opts.JetStream || !opts.SyncAlways {
				t.Errorf("JetStream %v, sync_interval always %v: want both", opts.JetStream, opts.SyncAlways)
			}
			if opts.Cluster.Name == "" || opts.Cluster.Port <= 0 {
				t.Errorf("no cluster name or port: %+v", opts.Cluster)
			}
			var routes []string
			for _, r := range opts.Routes {
				routes = append(routes, r.Host)
			}
			for _, other := range clusterNodes {
				if want := other + ":" + strconv.Itoa(opts.Cluster.Port); !slices.Contains(routes, want) {
					t.Errorf("routes %v do not include %s", routes, want)
				}
			}
			src := mounts[opts.StoreDir]
			if src == "" || strings.HasPrefix(src, "/") {
				t.Errorf("store_dir %q is not on a named volume (mounts %v)", opts.StoreDir, mounts)
			} else if _, ok := f.Volumes[src]; !ok {
				t.Errorf("volume %q is not declared", src)
			}
			if prev, ok := stores[src]; ok {
				t.Errorf("store volume %s is shared with %s", src, prev)
			}
			stores[src] = name
			if node.Healthcheck == nil || !strings.Contains(strings.Join(node.list(t, node.Healthcheck.Test), " "), ":"+strconv.Itoa(opts.HTTPPort)+"/healthz") {
				t.Errorf("no healthcheck on the monitoring port %d", opts.HTTPPort)
			}
			port := strconv.Itoa(opts.Port)
			i = slices.IndexFunc(node.ports(t), func(p portMapping) bool { return p.target == port && p.published != "" })
			if i < 0 {
				t.Errorf("client port %s is not published for consumers on the host", port)
			} else if p := node.ports(t)[i]; published[p.published] != "" {
				t.Errorf("host port %s is published by %s too", p.published, published[p.published])
			} else {
				published[p.published] = name
			}
		})
	}
}

// TestClusterBridges checks that both bridges publish to all three nodes
// with a stream at three replicas, wait for the nodes, and drain before
// Docker kills them.
func TestClusterBridges(t *testing.T) {
	f := loadCompose(t)
	names, _ := binaryConfig(t)
	df := loadDockerfile(t)
	for _, name := range clusterBridges {
		t.Run(name, func(t *testing.T) {
			b := mustService(t, f, name)
			if b.Build == nil {
				t.Error("not built from this repository")
			}
			for k := range b.Environment {
				if !names[k] {
					t.Errorf("sets %s, which the binary does not read", k)
				}
			}
			var hosts []string
			for raw := range strings.SplitSeq(b.Environment["NATS_URL"], ",") {
				u, err := url.Parse(strings.TrimSpace(raw))
				if err != nil || u.Scheme != "nats" {
					t.Fatalf("NATS_URL entry %q is not a nats:// URL (%v)", raw, err)
				}
				hosts = append(hosts, u.Hostname())
			}
			slices.Sort(hosts)
			if !slices.Equal(hosts, clusterNodes) {
				t.Errorf("NATS_URL names %v, want every node %v", hosts, clusterNodes)
			}
			if got := b.Environment["NATS_STREAM_REPLICAS"]; got != strconv.Itoa(len(clusterNodes)) {
				t.Errorf("NATS_STREAM_REPLICAS %q, want %d: one copy per node", got, len(clusterNodes))
			}
			if b.Environment["SINKS"] != "nats" {
				t.Errorf("SINKS %q, want nats", b.Environment["SINKS"])
			}
			deps, _ := b.DependsOn.(map[string]any)
			for _, node := range clusterNodes {
				dep, _ := deps[node].(map[string]any)
				if dep["condition"] != "service_healthy" {
					t.Errorf("depends on %s with %v, want condition service_healthy", node, deps[node])
				}
			}
			shutdown, err := time.ParseDuration(setting(t, b, df, "SHUTDOWN_TIMEOUT"))
			if err != nil {
				t.Fatal(err)
			}
			grace, err := time.ParseDuration(b.StopGracePeriod)
			if err != nil || grace <= shutdown {
				t.Errorf("stop_grace_period %q is not longer than SHUTDOWN_TIMEOUT %s", b.StopGracePeriod, shutdown)
			}
			if len(b.ports(t)) != 0 {
				t.Errorf("publishes %v: deliveries must go through the load balancer", b.ports(t))
			}
		})
	}
}

// TestClusterLoadBalancer reads the HAProxy configuration the lb service
// mounts: one published port in front of both bridges, each checked on
// /readyz, and a server timeout that lets the bridge answer first.
func TestClusterLoadBalancer(t *testing.T) {
	f := loadCompose(t)
	lb := mustService(t, f, "lb")
	if !strings.HasPrefix(lb.Image, "haproxy:") {
		t.Fatalf("lb image %q is not haproxy", lb.Image)
	}
	cfgPath, err := filepath.Abs(filepath.Join(root, "deploy/haproxy-cluster.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if got := lb.mounts(t)["/usr/local/etc/haproxy/haproxy.cfg"]; got != cfgPath {
		t.Fatalf("haproxy.cfg is mounted from %q, want %s", got, cfgPath)
	}
	cfg := parseHAProxy(t, cfgPath)

	var bind string
	for _, line := range cfg["frontend webhooks"] {
		if rest, ok := strings.CutPrefix(line, "bind "); ok {
			bind = strings.TrimPrefix(strings.Fields(rest)[0], "*")
		}
	}
	port := strings.TrimPrefix(bind, ":")
	if port == "" || !slices.ContainsFunc(lb.ports(t), func(p portMapping) bool { return p.target == port && p.published != "" }) {
		t.Errorf("frontend binds %q but lb publishes %+v", bind, lb.ports(t))
	}

	backend := cfg["backend bridges"]
	if !slices.Contains(backend, "option httpchk GET /readyz") {
		t.Error("the backend does not check /readyz: a bridge that cannot publish would still get deliveries")
	}
	df := loadDockerfile(t)
	for _, name := range clusterBridges {
		b := mustService(t, f, name)
		want := fmt.Sprintf("server %s %s:%s check", name, name, portOf(t, "LISTEN_ADDR", setting(t, b, df, "LISTEN_ADDR")))
		if !slices.Contains(backend, want) {
			t.Errorf("backend has no %q:\n%s", want, strings.Join(backend, "\n"))
		}
	}

	publish, err := time.ParseDuration(setting(t, mustService(t, f, clusterBridges[0]), df, "PUBLISH_TIMEOUT"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range cfg["defaults"] {
		if rest, ok := strings.CutPrefix(line, "timeout server "); ok {
			d, err := time.ParseDuration(rest)
			if err != nil || d <= publish {
				t.Errorf("timeout server %q is not longer than PUBLISH_TIMEOUT %s: the proxy would cut answers the bridge is about to give", rest, publish)
			}
		}
	}
}

// parseHAProxy returns each section's lines ("defaults", "backend x", …),
// trimmed, without comments.
func parseHAProxy(t *testing.T, path string) map[string][]string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string][]string{}
	current := ""
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			current = strings.Join(strings.Fields(line), " ")
			sections[current] = nil
			continue
		}
		sections[current] = append(sections[current], strings.Join(strings.Fields(line), " "))
	}
	return sections
}
