package up

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/switchyard-llm/switchyard/internal/etcdclient"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

func start(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	c, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

type completion struct {
	Choices []struct {
		Text         string  `json:"text"`
		FinishReason string  `json:"finish_reason"`
		TokenIDs     []int32 `json:"token_ids"`
		Logprobs     *struct {
			TokenLogprobs []float32 `json:"token_logprobs"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

func post(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func complete(t *testing.T, c *Cluster, body map[string]any) completion {
	t.Helper()
	code, out := post(t, c.URL+"/v1/completions", body)
	if code != http.StatusOK {
		t.Fatalf("completions: %d %s", code, out)
	}
	var r completion
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// reference runs greedy decoding in one process and returns the tokens and
// their log-probabilities, stopping at end-of-sequence as the server does.
func reference(t *testing.T, path string, prompt []int32, n int) ([]int32, []float32) {
	t.Helper()
	f, err := model.Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := model.LoadLocal(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := f.Get("tokenizer.ggml.eos_token_id")
	eosID, _ := eos.Int()
	p := sampling.Defaults()
	p.Temperature, p.TokenLogprob = 0, true
	s, _ := sampling.New(p, m.Vocab)
	seq := m.NewSequence()
	var toks []int32
	var lps []float32
	next := prompt
	for range n {
		out, err := m.Forward(t.Context(), []model.Chunk{{Seq: seq, Tokens: next}})
		if err != nil {
			t.Fatal(err)
		}
		r := s.Sample(out[0])
		if int64(r.Token) == eosID {
			break
		}
		toks, lps = append(toks, r.Token), append(lps, r.Logprob)
		next = []int32{r.Token}
	}
	return toks, lps
}

// TestEquivalence serves each architecture's tiny model from 3 expert
// nodes and checks greedy tokens and log-probabilities equal the
// single-process engine's, bit for bit.
func TestEquivalence(t *testing.T) {
	models, _ := filepath.Glob("../../testdata/models/tiny-*-f32.gguf")
	models = append(models, "../../testdata/models/tiny-mixtral-q8_0.gguf")
	kquants, _ := filepath.Glob("../../testdata/models/small-kquant-*.gguf") // every quantisation type
	models = append(models, kquants...)
	prompt := []int32{510, 17, 300, 42, 255, 7, 128}
	for _, path := range models {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c := start(t, Config{ModelPath: path})
			got := complete(t, c, map[string]any{"prompt": prompt, "max_tokens": 16, "temperature": 0, "logprobs": 1, "return_token_ids": true})
			wantToks, wantLps := reference(t, path, prompt, 16)
			ch := got.Choices[0]
			if !slices.Equal(ch.TokenIDs, wantToks) {
				t.Errorf("tokens %v, want %v", ch.TokenIDs, wantToks)
			}
			if ch.Logprobs == nil || !slices.Equal(ch.Logprobs.TokenLogprobs, wantLps) {
				t.Errorf("logprobs differ:\n got %v\nwant %v", ch.Logprobs, wantLps)
			}
		})
	}
}

// TestConcurrentStreams runs 16 streams at once on the demo model and
// checks each equals the same request run alone.
func TestConcurrentStreams(t *testing.T) {
	c := start(t, Config{})
	prompts := make([]string, 16)
	for i := range prompts {
		prompts[i] = fmt.Sprintf("%s %d", []string{"The list type", "def f(x):", "To open a file", "class Point:"}[i%4], i)
	}
	alone := make([]string, len(prompts))
	for i, p := range prompts {
		alone[i] = complete(t, c, map[string]any{"prompt": p, "max_tokens": 24, "temperature": 0}).Choices[0].Text
	}
	var wg sync.WaitGroup
	got := make([]string, len(prompts))
	errs := make([]error, len(prompts))
	for i, p := range prompts {
		wg.Go(func() { got[i], errs[i] = streamText(c.URL, p) })
	}
	wg.Wait()
	for i := range prompts {
		if errs[i] != nil {
			t.Errorf("stream %d: %v", i, errs[i])
		} else if got[i] != alone[i] {
			t.Errorf("stream %d: %q, alone %q", i, got[i], alone[i])
		}
	}
}

// streamText reads a streamed completion's text from the SSE events.
func streamText(url, prompt string) (string, error) { return streamTextN(url, prompt, 24) }

func filepathTemp() (string, error) { return os.MkdirTemp("", "switchyard-bin-") }

// streamTextN streams a greedy completion of up to n tokens.
func streamTextN(url, prompt string, n int) (string, error) {
	return streamBody(url, map[string]any{"prompt": prompt, "max_tokens": n, "temperature": 0, "stream": true})
}

// streamBody streams a completion request and returns its text.
func streamBody(url string, req map[string]any) (string, error) {
	b, _ := json.Marshal(req)
	resp, err := http.Post(url+"/v1/completions", "application/json", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	var sb strings.Builder
	done := false
	for _, line := range strings.Split(string(body), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var ev struct {
			Choices []struct{ Text string }   `json:"choices"`
			Error   *struct{ Message string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return "", err
		}
		if ev.Error != nil {
			return "", fmt.Errorf("error in stream: %s", ev.Error.Message)
		}
		for _, ch := range ev.Choices {
			sb.WriteString(ch.Text)
		}
	}
	if !done {
		return "", fmt.Errorf("stream did not end with [DONE]: %s", body)
	}
	return sb.String(), nil
}

// TestNodeReadsItsShare checks each of 3 expert nodes read about a third
// of the expert bytes of the model file.
func TestNodeReadsItsShare(t *testing.T) {
	cfgCache := t.TempDir()
	c := start(t, Config{CacheDir: cfgCache})
	cli, err := etcdclient.New([]string{c.Etcd}, c.TLS.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	store := placement.NewStore(cli, "default")
	nodes, err := placement.List[placement.Node](t.Context(), store, store.NodesPrefix())
	if err != nil || len(nodes) != 3 {
		t.Fatalf("nodes: %v %v", nodes, err)
	}
	var info placement.ModelInfo
	if err := store.Get(t.Context(), store.Model(), &info); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(filepath.Join(cfgCache, "demo-moe-q8_0.gguf"), gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	header := uint64(f.DataOffset)
	f.Close()
	// The demo model: every unit is 3 Q8_0 matrices of 192 × 384.
	unitBytes := uint64(3 * 192 * 384 / 32 * 34)
	totalExpert := unitBytes * uint64(len(info.Units()))
	for id, n := range nodes {
		conn, err := grpc.NewClient(n.Addr, c.TLS.DialOption())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := pb.NewExpertServiceClient(conn).Info(t.Context(), &pb.InfoRequest{})
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		held := uint64(len(resp.Units)) * unitBytes
		// The header (with the tokenizer) is read too, in 64 KiB buffers.
		if resp.FileBytesRead < held+header || resp.FileBytesRead > held+header+64<<10 {
			t.Errorf("node %s holds %d units (%d bytes) but read %d bytes", id, len(resp.Units), held, resp.FileBytesRead)
		}
		if frac := float64(held) / float64(totalExpert); frac < 0.30 || frac > 0.37 {
			t.Errorf("node %s holds %.2f of the expert bytes, want about a third", id, frac)
		}
	}
}

func TestBadHTTPRequests(t *testing.T) {
	c := start(t, Config{})
	long := strings.Repeat("word ", 400)
	cases := []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"malformed JSON", "/v1/completions", `{"prompt":`, 400, "not valid JSON"},
		{"unknown model", "/v1/completions", `{"model":"gpt-9","prompt":"hi"}`, 404, "does not exist"},
		{"negative max_tokens", "/v1/completions", `{"prompt":"hi","max_tokens":-1}`, 400, "max_tokens"},
		{"prompt longer than the context", "/v1/completions", `{"prompt":"` + long + `"}`, 400, "context"},
		{"negative temperature", "/v1/completions", `{"prompt":"hi","temperature":-1}`, 400, "temperature"},
		{"top_p 0", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"top_p":0}`, 400, "top_p"},
		{"negative top_k", "/v1/completions", `{"prompt":"hi","top_k":-3}`, 400, "top_k"},
		{"token outside vocabulary", "/v1/completions", `{"prompt":[1,99999]}`, 400, "outside the vocabulary"},
		{"empty prompt", "/v1/completions", `{"prompt":""}`, 400, "empty"},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, 400, "messages"},
		{"bad role", "/v1/chat/completions", `{"messages":[{"role":"wizard","content":"hi"}]}`, 400, "role"},
		{"n past OpenAI's 128", "/v1/completions", `{"prompt":"hi","n":129}`, 400, "n = 129"},
		{"unknown route", "/v1/embeddings", `{}`, 404, "no route"},
		{"wrong method", "/v1/models", `{}`, 405, "use GET"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(c.URL+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error struct {
					Message, Type string
				}
			}
			json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tc.code || !strings.Contains(e.Error.Message, tc.msg) || e.Error.Type == "" {
				t.Errorf("got %d %+v, want %d mentioning %q", resp.StatusCode, e.Error, tc.code, tc.msg)
			}
		})
	}
}

// TestUnitUnavailableFails takes a node's units out of service without the
// controller being able to place them elsewhere, and checks requests fail
// after the bounded wait with an error naming the node and a unit.
func TestUnitUnavailableFails(t *testing.T) {
	c := start(t, Config{ModelPath: "../../testdata/models/tiny-mixtral-f32.gguf", UnitWait: time.Second})
	cli, err := etcdclient.New([]string{c.Etcd}, c.TLS.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	store := placement.NewStore(cli, "default")
	// Take node-2's units out of service: it reports none ready. (A status
	// that merely vanishes, as in an etcd outage, keeps a live node
	// serving.) The coordinator must report its units as unavailable.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sts, err := placement.List[placement.Status](ctx, store, store.StatusPrefix())
	if err != nil {
		t.Fatal(err)
	}
	st, ok := sts["node-2"]
	if !ok || len(st.Ready) == 0 {
		t.Fatalf("node-2's status: %+v", sts)
	}
	st.Ready = nil
	if err := store.Put(ctx, store.Status("node-2"), st, 0); err != nil {
		t.Fatal(err)
	}
	code, out := post(t, c.URL+"/v1/completions", map[string]any{"prompt": []int{510, 1, 2, 3, 4, 5, 6, 7, 8, 9}, "max_tokens": 8})
	if code != http.StatusServiceUnavailable || !strings.Contains(string(out), "node node-2") || !strings.Contains(string(out), "no ready replica after waiting 1s") {
		t.Errorf("got %d %s, want 503 naming node-2 and a unit", code, out)
	}
	// The unit named is one the placement gives node-2 (and no other node:
	// one replica), so it is unavailable for the reason given.
	m := regexp.MustCompile(`unit (\d+/\d+) has`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("the error names no unit: %s", out)
	}
	pm, err := store.GetPlacement(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if on := pm.Units[m[1]]; !slices.Equal(on, []string{"node-2"}) {
		t.Errorf("the error names unit %s, which the placement puts on %v, want only node-2", m[1], on)
	}
}
