package check

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestChartRunsTheDockerfileImage checks that the chart's default image is
// the one docker-compose.yml builds from the Dockerfile, and that the pod
// runs it the way the image is made: its ENTRYPOINT with its CMD, as its
// USER, on the ports it exposes, with its store where the image keeps it.
// integration/image builds that image and runs it.
func TestChartRunsTheDockerfileImage(t *testing.T) {
	built := composeBuiltImages(t)
	if len(built) == 0 {
		t.Fatal("docker-compose.yml builds no service from the Dockerfile")
	}
	df := finalStage(t)

	dep := deployment(t, render(t, chartDir, "-f", filepath.Join(chartDir, "examples", "single-embedded.yaml")))
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	for service, image := range built {
		if c.Image != image {
			t.Errorf("the chart runs %q by default, docker-compose.yml builds %s as %q", c.Image, service, image)
		}
	}
	if len(c.Command) > 0 {
		t.Errorf("command %q replaces the image's ENTRYPOINT", c.Command)
	}
	if !slices.Equal(c.Args, df.cmd) {
		t.Errorf("args %q, the image's CMD is %q", c.Args, df.cmd)
	}

	uid, gid, _ := strings.Cut(df.user, ":")
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsUser == nil || sc.RunAsGroup == nil ||
		strconv.FormatInt(*sc.RunAsUser, 10) != uid || strconv.FormatInt(*sc.RunAsGroup, 10) != gid {
		t.Errorf("pod security context %+v, the image's USER is %s", sc, df.user)
	}

	env := envOf(c)
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, v := range map[string]string{"http": "LISTEN_ADDR", "nats": "NATS_EMBEDDED_LISTEN"} {
		addr, ok := env[v]
		if !ok {
			addr = df.env[v]
		}
		_, port, _ := strings.Cut(addr, ":")
		if strconv.Itoa(int(ports[name])) != port {
			t.Errorf("containerPort %s is %d, %s is %q", name, ports[name], v, addr)
		}
		if !slices.Contains(df.expose, port) && !slices.Contains(df.expose, port+"/tcp") {
			t.Errorf("%s listens on %s, which the image does not EXPOSE (%v)", v, port, df.expose)
		}
	}

	dataDir := df.env["DATA_DIR"]
	if env["DATA_DIR"] != dataDir {
		t.Errorf("DATA_DIR is %q, the image's is %q", env["DATA_DIR"], dataDir)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dataDir }) {
		t.Errorf("no volume is mounted at the image's DATA_DIR %s: the store would be lost with the pod", dataDir)
	}
}

// composeBuiltImages returns the image name of every service that
// docker-compose.yml builds (those with a build: key), by service name. A
// service that only merges another (<<: *anchor) inherits its image.
func composeBuiltImages(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	serviceRE := regexp.MustCompile(`^  ([A-Za-z0-9_-]+):`)
	keyRE := regexp.MustCompile(`^    (build|image):\s*(.*?)\s*$`)
	images, builds := map[string]string{}, map[string]bool{}
	inServices, current := false, ""
	for line := range strings.SplitSeq(string(src), "\n") {
		switch {
		case strings.HasPrefix(line, "services:"):
			inServices = true
			continue
		case line != "" && line[0] != ' ' && line[0] != '#':
			inServices = false
		}
		if !inServices {
			continue
		}
		if m := serviceRE.FindStringSubmatch(line); m != nil {
			current = m[1]
		} else if m := keyRE.FindStringSubmatch(line); m != nil && current != "" {
			if m[1] == "build" {
				builds[current] = true
			} else {
				images[current] = strings.Trim(m[2], `"'`)
			}
		}
	}
	out := map[string]string{}
	for s := range builds {
		if images[s] == "" {
			t.Errorf("docker-compose.yml builds %s without naming its image: Compose would make up a name the chart cannot know", s)
		}
		out[s] = images[s]
	}
	return out
}

// dockerStage is what the chart must agree with in the Dockerfile's final
// stage.
type dockerStage struct {
	user   string
	expose []string
	env    map[string]string
	cmd    []string
}

// finalStage reads the instructions after the Dockerfile's last FROM.
func finalStage(t *testing.T) dockerStage {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var instructions []string
	var cur strings.Builder
	for line := range strings.SplitSeq(string(src), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" && cur.Len() == 0 {
			continue
		}
		if rest, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(trimmed)
		instructions = append(instructions, cur.String())
		cur.Reset()
	}
	st := dockerStage{env: map[string]string{}}
	envPair := regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)`)
	for _, in := range instructions {
		cmd, args, _ := strings.Cut(in, " ")
		args = strings.TrimSpace(args)
		switch strings.ToUpper(cmd) {
		case "FROM":
			st = dockerStage{env: map[string]string{}}
		case "USER":
			st.user = args
		case "EXPOSE":
			st.expose = append(st.expose, strings.Fields(args)...)
		case "ENV":
			for _, m := range envPair.FindAllStringSubmatch(args, -1) {
				st.env[m[1]] = strings.Trim(m[2], `"`)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(args), &st.cmd); err != nil {
				t.Fatalf("CMD %s is not in exec form: %v", args, err)
			}
		}
	}
	if st.user == "" || len(st.cmd) == 0 {
		t.Fatalf("the Dockerfile's final stage has no USER or no CMD: %+v", st)
	}
	return st
}
