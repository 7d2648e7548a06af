package up

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/internal/demomodel"
	"github.com/switchyard-llm/switchyard/internal/statsview"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/routingstats"
)

type routedCompletion struct {
	Choices []struct {
		Routing struct {
			Prompt [][][]int `json:"prompt"`
			Tokens [][][]int `json:"tokens"`
		} `json:"routing"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

func getReport(t *testing.T, url, window string) routingstats.Report {
	t.Helper()
	resp, err := http.Get(url + "/v1/routing/stats?window=" + window)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("routing stats: %d", resp.StatusCode)
	}
	var rep routingstats.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestRoutingCountsExact runs a known workload and checks that the
// routing statistics count exactly what the requests' own routing says:
// every position through the model, k experts each.
func TestRoutingCountsExact(t *testing.T) {
	cache := t.TempDir()
	demo := readDemoModel(t, cache)
	c := start(t, Config{CacheDir: cache})
	layers, experts, k := demo.layers, demo.experts, demo.used
	want := make([][]uint64, layers)
	for l := range want {
		want[l] = make([]uint64, experts)
	}
	positions := 0
	for i, prompt := range []string{"The list type", "def f(x):\n    return", "To open a file, use", "class Point:"} {
		code, body := post(t, c.URL+"/v1/completions", map[string]any{
			"prompt": prompt, "max_tokens": 6 + i, "temperature": 0, "return_routing": true,
			"logit_bias": map[string]float64{strconv.Itoa(demo.eos): -100}, // no end-of-sequence: every token is fed back but the last
		})
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var r routedCompletion
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		rt := r.Choices[0].Routing
		if len(rt.Prompt) != r.Usage.PromptTokens || len(rt.Tokens) != r.Usage.CompletionTokens {
			t.Fatalf("routing for %d prompt and %d generated positions, usage %+v", len(rt.Prompt), len(rt.Tokens), r.Usage)
		}
		// The first generated token was produced at the last prompt
		// position (already in prompt); the last one was never fed back.
		fed := append(rt.Prompt, rt.Tokens[1:]...)
		for _, pos := range fed {
			for l, chosen := range pos {
				if len(chosen) != k {
					t.Fatalf("layer %d lists %d experts", l, len(chosen))
				}
				for _, e := range chosen {
					want[l][e]++
				}
			}
		}
		positions += len(fed)
	}
	rep := getReport(t, c.URL, "all")
	if len(rep.Layers) != layers {
		t.Fatalf("%d layers in the report", len(rep.Layers))
	}
	for l, lr := range rep.Layers {
		var sum uint64
		for e, er := range lr.Experts {
			sum += er.Tokens
			if er.Tokens != want[l][e] {
				t.Errorf("layer %d expert %d: %d tokens, return_routing says %d", l, e, er.Tokens, want[l][e])
			}
		}
		if lr.Tokens != uint64(positions) || sum != uint64(positions*k) {
			t.Errorf("layer %d: %d tokens and %d slots, want %d and %d", l, lr.Tokens, sum, positions, positions*k)
		}
		if lr.Imbalance < 1 || lr.Entropy <= 0 || lr.Entropy > 3 {
			t.Errorf("layer %d: imbalance %g entropy %g", l, lr.Imbalance, lr.Entropy)
		}
	}
	if len(rep.Nodes) != 3 || rep.Placement == nil || len(rep.Placement.Units) != layers*experts {
		t.Fatalf("nodes %+v placement %+v", rep.Nodes, rep.Placement)
	}
	var calls uint64
	for _, n := range rep.Nodes {
		if n.Health != "ready" || n.Units == 0 || n.Address == "" {
			t.Errorf("node %+v", n)
		}
		calls += n.Calls
	}
	if calls == 0 || rep.Totals.Generated == 0 {
		t.Errorf("totals %+v, %d calls to the nodes", rep.Totals, calls)
	}
	if m := rep.Model; m == nil || m.Layers != layers || m.Experts != experts || m.ExpertsUsed != k || m.TotalParams != demo.total ||
		m.RoutedParams != demo.routed || m.SharedParams != demo.total-demo.routed || m.EmbeddingParam != demo.embd ||
		m.ActiveParams != demo.total-demo.routed+demo.routed*int64(k)/int64(experts) {
		t.Errorf("model %+v; the file's tensor table gives %d layers of %d experts, %d used, %d parameters, %d routed, %d embeddings",
			m, layers, experts, k, demo.total, demo.routed, demo.embd)
	}
	if got := getReport(t, c.URL, "1m").Layers[0].Tokens; got != uint64(positions) {
		t.Errorf("1m window: %d tokens, want %d", got, positions)
	}
	resp, _ := http.Get(c.URL + "/v1/routing/stats?window=2h")
	if resp.StatusCode != 400 {
		t.Errorf("window=2h: %d, want 400", resp.StatusCode)
	}
	resp.Body.Close()
}

// demoModel is what the tests need of the demo model, read from its file
// here rather than from the census and tokenizer under test.
type demoModel struct {
	layers, experts, used, eos int
	total, routed, embd        int64 // parameters: all, of ffn_*_exps tensors, of token_embd
}

// readDemoModel writes the demo model into cache, as up does, and reads
// its hyperparameters, end-of-sequence token and tensor table.
func readDemoModel(t *testing.T, cache string) demoModel {
	t.Helper()
	path, err := demomodel.Path(cache)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	arch, _ := f.Get("general.architecture")
	num := func(key string) int {
		v, ok := f.Get(key)
		n, isInt := v.Int()
		if !ok || !isInt {
			t.Fatalf("%s: %v", key, v.V)
		}
		return int(n)
	}
	a := arch.V.(string)
	d := demoModel{layers: num(a + ".block_count"), experts: num(a + ".expert_count"), used: num(a + ".expert_used_count"),
		eos: num("tokenizer.ggml.eos_token_id")}
	for _, ti := range f.Tensors {
		n := int64(1)
		for _, x := range ti.Dims {
			n *= int64(x)
		}
		d.total += n
		switch {
		case ti.Name == "token_embd.weight":
			d.embd += n
		case strings.HasSuffix(ti.Name, "_exps.weight"):
			d.routed += n
		}
	}
	return d
}

// TestMetrics checks /metrics on up's router exposes every component's
// series, with per-expert series only when asked for.
func TestMetrics(t *testing.T) {
	for _, perExpert := range []bool{false, true} {
		c := start(t, Config{MetricsPerExpert: perExpert})
		post(t, c.URL+"/v1/completions", map[string]any{"prompt": "The list type", "max_tokens": 4, "stream": true})
		resp, err := http.Get(c.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text := string(body)
		for _, want := range []string{
			`switchyard_router_requests_total{code="200",component="router",endpoint="completions"} 1`,
			`switchyard_router_time_to_first_token_seconds_count{component="router"} 1`,
			`switchyard_router_inter_token_latency_seconds_count{component="router"} 3`,
			`switchyard_router_tokens_total{component="router",kind="completion"} 4`,
			`switchyard_coordinator_dispatch_seconds_count{component="coordinator-1",node="node-1"}`,
			`switchyard_coordinator_layer_imbalance{component="coordinator-1",layer="3"}`,
			`switchyard_expert_forward_total{code="OK",component="node-2"}`,
			`switchyard_expert_units_loaded{component="node-3"}`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("per-expert %v: /metrics lacks %s", perExpert, want)
			}
		}
		if got := strings.Contains(text, "switchyard_coordinator_expert_tokens{"); got != perExpert {
			t.Errorf("per-expert series present: %v, want %v", got, perExpert)
		}
		if perExpert {
			// Every series the Grafana dashboard queries exists.
			dash, err := os.ReadFile("../../deploy/grafana/switchyard.json")
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(dash) {
				t.Fatal("the Grafana dashboard is not valid JSON")
			}
			for _, name := range regexp.MustCompile(`switchyard_[a-z_]+`).FindAllString(string(dash), -1) {
				if !strings.Contains(text, name) {
					t.Errorf("the Grafana dashboard queries %s, which /metrics lacks", name)
				}
			}
		}
	}
}

// TestSpecialisation checks what the demo model's card reports: code and
// prose prompts prefer different experts, most of all in the last layer
// (experts 0, 1, 3 for code; 7, 5, 2 for prose).
func TestSpecialisation(t *testing.T) {
	c := start(t, Config{})
	demo := &routingstats.Report{Model: &routingstats.ModelSummary{Layers: 4, Experts: 8}} // 4 MoE layers
	code, err := statsview.Route(t.Context(), c.URL, "def f(x):\n    return x * 2\n\nclass Point:\n    def __init__(self, x, y):", demo)
	if err != nil {
		t.Fatal(err)
	}
	prose, err := statsview.Route(t.Context(), c.URL, "The list type is a mutable sequence, and the module describes how objects are used.", demo)
	if err != nil {
		t.Fatal(err)
	}
	favourite := func(counts []int) int {
		best := 0
		for e, n := range counts {
			if n > counts[best] {
				best = e
			}
		}
		return best
	}
	differ := 0
	for l := range 4 {
		if favourite(code.Counts[l]) != favourite(prose.Counts[l]) {
			differ++
		}
	}
	if differ == 0 {
		t.Errorf("code and prose prefer the same experts in every layer: %v / %v", code.Counts, prose.Counts)
	}
	codeShare := func(r *statsview.Routing, experts ...int) float64 {
		n, total := 0, 0
		for e, v := range r.Counts[3] {
			total += v
			for _, x := range experts {
				if e == x {
					n += v
				}
			}
		}
		return float64(n) / float64(total)
	}
	if a, b := codeShare(code, 0, 1, 3), codeShare(prose, 0, 1, 3); a <= b {
		t.Errorf("layer 3 experts 0, 1, 3 take %.2f of code slots but %.2f of prose slots", a, b)
	}
}
