// Package validate renders the Helm chart for several value sets and
// decodes every manifest strictly into the Kubernetes API types (unknown
// fields are errors), then checks what matters: probes and resource
// requests everywhere, expert nodes as a StatefulSet with a disruption
// budget, TLS material mounted when TLS is on, the restricted pod security
// context everywhere, the gossip key from a Secret through the environment
// (never argv), and --cache-dir on a mounted emptyDir or claim. It is a
// module of its own so that the main module does not carry Kubernetes'
// dependencies.
package validate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const chart = "../switchyard"

func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	out, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("helm is not installed (.ci/run installs it with go install)")
	}
	t.Skip("helm is not installed: go install helm.sh/helm/v3/cmd/helm@v3.22.0")
	return ""
}

// rendered is one value set's manifests, decoded.
type rendered struct {
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	ingresses    []*networkingv1.Ingress
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	others       map[string]int // kinds without Go types here (CRDs)
}

func render(t *testing.T, helm string, set []string) *rendered {
	t.Helper()
	var flags []string
	for _, s := range set {
		flags = append(flags, "--set", s)
	}
	args := append([]string{"template", "sy", chart, "--namespace", "llm"}, flags...)
	lint := append([]string{"lint", chart, "--strict"}, flags...)
	if out, err := exec.Command(helm, lint...).CombinedOutput(); err != nil {
		t.Fatalf("helm lint %v: %v\n%s", set, err, out)
	}
	out, err := exec.Command(helm, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", set, err, out)
	}
	r := &rendered{deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
		services: map[string]*corev1.Service{}, others: map[string]int{}}
	for _, doc := range bytes.Split(out, []byte("\n---")) {
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("a manifest is not YAML: %v\n%s", err, doc)
		}
		if head.Kind == "" {
			continue
		}
		strict := func(v any) {
			if err := yaml.UnmarshalStrict(doc, v); err != nil {
				t.Fatalf("%s does not decode strictly: %v\n%s", head.Kind, err, doc)
			}
		}
		switch head.Kind {
		case "Deployment":
			var d appsv1.Deployment
			strict(&d)
			r.deployments[d.Name] = &d
		case "StatefulSet":
			var s appsv1.StatefulSet
			strict(&s)
			r.statefulSets[s.Name] = &s
		case "Service":
			var s corev1.Service
			strict(&s)
			r.services[s.Name] = &s
		case "PodDisruptionBudget":
			var p policyv1.PodDisruptionBudget
			strict(&p)
			r.pdbs = append(r.pdbs, &p)
		case "Ingress":
			var i networkingv1.Ingress
			strict(&i)
			r.ingresses = append(r.ingresses, &i)
		case "HorizontalPodAutoscaler":
			var h autoscalingv2.HorizontalPodAutoscaler
			strict(&h)
			r.hpas = append(r.hpas, &h)
		case "ServiceMonitor", "Certificate":
			r.others[head.Kind]++
		default:
			t.Fatalf("unexpected kind %s (%s)", head.Kind, head.APIVersion)
		}
	}
	return r
}

func (r *rendered) pods() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for n, d := range r.deployments {
		out[n] = &d.Spec.Template
	}
	for n, s := range r.statefulSets {
		out[n] = &s.Spec.Template
	}
	return out
}

func TestChart(t *testing.T) {
	helm := helmBinary(t)
	sets := []struct {
		name string
		set  []string
		tls  bool
	}{
		{"defaults", nil, true},
		{"external etcd", []string{"etcd.bundled=false", "etcd.externalEndpoints={https://etcd-0.example:2379,https://etcd-1.example:2379}"}, true},
		{"TLS off", []string{"tls.enabled=false"}, false},
		{"3 etcd members", []string{"etcd.replicas=3"}, true},
		{"ingress and autoscaling", []string{"router.ingress.enabled=true", "router.autoscaling.enabled=true",
			"metrics.serviceMonitor.enabled=true", "tls.certManager.enabled=true", "router.apiKeysSecret=api-keys"}, true},
		{"cache on a claim", []string{"cache.pvc.claimName=sy-cache", "cache.mountPath=/cache"}, true},
	}
	for _, vs := range sets {
		t.Run(vs.name, func(t *testing.T) {
			r := render(t, helm, vs.set)
			pods := r.pods()
			for name, p := range pods {
				restricted(t, name, &p.Spec)
				for _, c := range p.Spec.Containers {
					if c.LivenessProbe == nil || c.ReadinessProbe == nil {
						t.Errorf("%s/%s lacks liveness or readiness probes", name, c.Name)
					}
					if len(c.Resources.Requests) == 0 {
						t.Errorf("%s/%s has no resource requests", name, c.Name)
					}
					if name == "sy-etcd" {
						continue
					}
					gossip(t, name, c, vs.tls)
					if name != "sy-router" {
						cached(t, name, &p.Spec, c, vs.set)
					}
					hasTLSArg := slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--tls-cert=") })
					mounted := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "tls" })
					fromSecret := slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "tls" && v.Secret != nil })
					if vs.tls != (hasTLSArg && mounted && fromSecret) {
						t.Errorf("%s: TLS %v but --tls-cert %v, mounted %v, secret volume %v", name, vs.tls, hasTLSArg, mounted, fromSecret)
					}
				}
			}
			nodes, ok := r.statefulSets["sy-expert-node"]
			if !ok {
				t.Fatal("expert nodes are not a StatefulSet")
			}
			podLabels := labels.Set(nodes.Spec.Template.Labels)
			covered := slices.ContainsFunc(r.pdbs, func(p *policyv1.PodDisruptionBudget) bool {
				return labels.SelectorFromSet(p.Spec.Selector.MatchLabels).Matches(podLabels)
			})
			if !covered {
				t.Error("no PodDisruptionBudget selects the expert nodes")
			}
			node := nodes.Spec.Template.Spec
			if node.TerminationGracePeriodSeconds == nil || *node.TerminationGracePeriodSeconds < 60 ||
				node.Containers[0].Lifecycle == nil || node.Containers[0].Lifecycle.PreStop == nil || node.Affinity == nil {
				t.Error("expert nodes lack a grace period, a preStop drain or anti-affinity")
			}
			if g := node.Containers[0].ReadinessProbe.GRPC; g == nil || g.Port != 9101 {
				t.Error("expert nodes' readiness probe is not the native gRPC probe on the health port")
			}
			coord := r.deployments["sy-coordinator"]
			if g := coord.Spec.Template.Spec.Containers[0].ReadinessProbe.GRPC; g == nil || g.Service == nil || *g.Service != "switchyard.v1.CoordinatorService" {
				t.Error("coordinators' readiness probe does not check that every unit is served")
			}
			router := r.deployments["sy-router"]
			if h := router.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet; h == nil || h.Path != "/readyz" {
				t.Error("the router's readiness probe is not GET /readyz")
			}
			if _, ok := r.services["sy-router"]; !ok {
				t.Error("no router Service")
			}
			etcdArg := ""
			for _, a := range coord.Spec.Template.Spec.Containers[0].Args {
				if strings.HasPrefix(a, "--etcd=") {
					etcdArg = a
				}
			}
			switch vs.name {
			case "external etcd":
				if _, ok := r.statefulSets["sy-etcd"]; ok || etcdArg != "--etcd=https://etcd-0.example:2379,https://etcd-1.example:2379" {
					t.Errorf("external etcd: bundled etcd rendered or %s", etcdArg)
				}
			case "3 etcd members":
				e := r.statefulSets["sy-etcd"]
				if e == nil || *e.Spec.Replicas != 3 || strings.Count(etcdArg, "https://") != 3 {
					t.Errorf("3 members: etcd %v, %s", e, etcdArg)
				}
			case "TLS off":
				if !strings.HasPrefix(etcdArg, "--etcd=http://") {
					t.Errorf("TLS off but %s", etcdArg)
				}
			case "ingress and autoscaling":
				if len(r.ingresses) != 1 || len(r.hpas) != 1 || router.Spec.Replicas != nil || r.others["ServiceMonitor"] != 1 || r.others["Certificate"] != 1 {
					t.Errorf("ingress %d, HPA %d, router replicas %v, others %v", len(r.ingresses), len(r.hpas), router.Spec.Replicas, r.others)
				}
			}
			if vs.name != "ingress and autoscaling" && (len(r.ingresses)+len(r.hpas) != 0) {
				t.Error("ingress or autoscaler rendered though off")
			}
		})
	}
}

// restricted checks the restricted Pod Security Standard: a non-root pod
// with the runtime's seccomp profile and a group that owns its volumes;
// containers on a read-only root, without privilege escalation or
// capabilities.
func restricted(t *testing.T, name string, p *corev1.PodSpec) {
	t.Helper()
	sc := p.SecurityContext
	switch {
	case sc == nil:
		t.Errorf("%s has no pod security context", name)
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0:
		t.Errorf("%s may run as root: runAsNonRoot %v, runAsUser %v", name, sc.RunAsNonRoot, sc.RunAsUser)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: seccomp profile %v, want RuntimeDefault", name, sc.SeccompProfile)
	case sc.FSGroup == nil:
		t.Errorf("%s: no fsGroup, so its volumes may not be writable by its user", name)
	}
	for _, c := range p.Containers {
		cs := c.SecurityContext
		if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
			cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
			cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") {
			t.Errorf("%s/%s: security context %+v, want a read-only root, no privilege escalation, every capability dropped", name, c.Name, cs)
		}
	}
}

// gossip checks that the gossip key reaches a role from a Secret through
// its environment, never on its command line.
func gossip(t *testing.T, name string, c corev1.Container, tls bool) {
	t.Helper()
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--gossip-key") || strings.Contains(a, "GOSSIP") {
			t.Errorf("%s: the gossip key is on the command line: %s", name, a)
		}
	}
	fromSecret := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "SWITCHYARD_GOSSIP_KEY" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
	})
	if name != "sy-router" && fromSecret != tls {
		t.Errorf("%s: TLS %v but SWITCHYARD_GOSSIP_KEY from a Secret %v", name, tls, fromSecret)
	}
}

// cached checks that a role's --cache-dir is a mounted volume, an
// emptyDir or the claim the values name, since its root is read-only.
func cached(t *testing.T, name string, p *corev1.PodSpec, c corev1.Container, set []string) {
	t.Helper()
	dir := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--cache-dir="); ok {
			dir = v
		}
	}
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
	if dir == "" || i < 0 || c.VolumeMounts[i].ReadOnly {
		t.Errorf("%s: --cache-dir %q is not a writable mount", name, dir)
		return
	}
	j := slices.IndexFunc(p.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[i].Name })
	if j < 0 {
		t.Errorf("%s: the cache mount's volume is missing", name)
		return
	}
	v := p.Volumes[j]
	switch claim := slices.Contains(set, "cache.pvc.claimName=sy-cache"); {
	case claim && (v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "sy-cache"):
		t.Errorf("%s: the cache is %+v, want the claim sy-cache", name, v.VolumeSource)
	case !claim && (v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil):
		t.Errorf("%s: the cache is %+v, want an emptyDir with a size limit", name, v.VolumeSource)
	}
}
