package deploy

import (
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type compose struct {
	Name        string `json:"name"`
	XSwitchyard any    `json:"x-switchyard"`
	Services    map[string]struct {
		Restart         string                                `json:"restart"`
		Image           string                                `json:"image"`
		Command         []string                              `json:"command"`
		Volumes         []string                              `json:"volumes"`
		Ports           []string                              `json:"ports"`
		DependsOn       []string                              `json:"depends_on"`
		StopGracePeriod string                                `json:"stop_grace_period"`
		Build           *struct{ Context, Dockerfile string } `json:"build"`
	} `json:"services"`
	Volumes map[string]any `json:"volumes"`
}

// TestComposeStructure checks deploy/compose.yaml: etcd from its official
// image, a router, two coordinators and three expert nodes from one image
// built by deploy/Dockerfile, each with a real subcommand and flags that
// agree (etcd address, model path on the mounted volume, unique IDs).
func TestComposeStructure(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	etcd, ok := c.Services["etcd"]
	if !ok || !strings.HasPrefix(etcd.Image, "quay.io/coreos/etcd:") {
		t.Errorf("etcd service: %+v", etcd)
	}
	roles := map[string]int{}
	ids := map[string]bool{}
	for name, s := range c.Services {
		if name == "etcd" {
			continue
		}
		if s.Image != "switchyard:dev" || s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s: image %q built from %+v, want the one switchyard image", name, s.Image, s.Build)
		}
		if len(s.Command) == 0 || !slices.Contains([]string{"router", "coordinator", "expert-node"}, s.Command[0]) {
			t.Fatalf("%s: command %v is not a role", name, s.Command)
		}
		role := s.Command[0]
		roles[role]++
		flags := map[string]string{}
		for _, a := range s.Command[1:] {
			k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			if !ok || !strings.HasPrefix(a, "--") {
				t.Errorf("%s: argument %q is not --flag=value", name, a)
			}
			flags[k] = v
		}
		if flags["etcd"] != "http://etcd:2379" || !slices.Contains(s.DependsOn, "etcd") {
			t.Errorf("%s: etcd %q, depends on %v", name, flags["etcd"], s.DependsOn)
		}
		if role != "router" {
			if !strings.HasPrefix(flags["model"], "/models/") || !slices.Contains(s.Volumes, "./models:/models:ro") {
				t.Errorf("%s: model %q not on the mounted volume %v", name, flags["model"], s.Volumes)
			}
			id := flags["id"] + flags["node-id"]
			if id != name || ids[id] {
				t.Errorf("%s: ID %q (must be unique and match the service)", name, id)
			}
			ids[id] = true
			if !strings.HasPrefix(flags["advertise"], name+":") {
				t.Errorf("%s: advertises %q, not its service name", name, flags["advertise"])
			}
		}
		if role == "expert-node" && s.StopGracePeriod == "" {
			t.Errorf("%s: no stop_grace_period to drain in", name)
		}
	}
	if roles["router"] != 1 || roles["coordinator"] != 2 || roles["expert-node"] != 3 {
		t.Errorf("roles %v, want 1 router, 2 coordinators, 3 expert nodes", roles)
	}
	if _, ok := c.Volumes["etcd-data"]; !ok {
		t.Error("no etcd-data volume")
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"CGO_ENABLED=0 go build", "USER 65532:65532", `ENTRYPOINT ["switchyard"]`, "AS build", "distroless/static"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
