package up

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

type cachedCompletion struct {
	completion
	Usage struct {
		PromptTokens        int `json:"prompt_tokens"`
		PromptTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
}

func completeCached(t *testing.T, c *Cluster, body map[string]any) cachedCompletion {
	t.Helper()
	code, out := post(t, c.URL+"/v1/completions", body)
	if code != http.StatusOK {
		t.Fatalf("completions: %d %s", code, out)
	}
	var r cachedCompletion
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPrefixCacheExact: on every architecture in testdata, a request whose
// prompt starts with an earlier request's prompt and answer is served
// partly from the prefix cache (usage reports the cached tokens), and its
// greedy tokens and log-probabilities are bit-identical to the same
// request with cache_prompt false.
func TestPrefixCacheExact(t *testing.T) {
	models, _ := filepath.Glob("../../testdata/models/tiny-*.gguf")
	first := make([]int32, 70)
	for i := range first {
		first[i] = int32(i*97%500) + 1
	}
	for _, path := range models {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c := start(t, Config{ModelPath: path, ExpertNodes: 2})
			req := func(prompt []int32, cache bool) cachedCompletion {
				return completeCached(t, c, map[string]any{"prompt": prompt, "max_tokens": 12, "temperature": 0,
					"logprobs": 1, "return_token_ids": true, "cache_prompt": cache})
			}
			a := req(first, true)
			if got := a.Usage.PromptTokensDetails.CachedTokens; got != 0 {
				t.Errorf("first request: %d cached tokens, want 0", got)
			}
			second := slices.Concat(first, a.Choices[0].TokenIDs, []int32{5, 6, 7, 8, 9})
			off := req(second, false)
			on := req(second, true)
			if got := off.Usage.PromptTokensDetails.CachedTokens; got != 0 {
				t.Errorf("cache_prompt false: %d cached tokens, want 0", got)
			}
			if got := on.Usage.PromptTokensDetails.CachedTokens; got < 64 {
				t.Errorf("second request: %d cached tokens, want at least 64", got)
			}
			// The routing report shows the coordinator's pool; its hit count
			// is what usage reported (published after the step, so waited for).
			deadline := time.Now().Add(5 * time.Second)
			for {
				kv := getReport(t, c.URL, "all").KVCache
				if len(kv) == 1 && kv[0].HitTokens == uint64(on.Usage.PromptTokensDetails.CachedTokens) && kv[0].HitRate > 0 && kv[0].BlocksCached > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("routing report's KV cache: %+v, want %d hit tokens", kv, on.Usage.PromptTokensDetails.CachedTokens)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !slices.Equal(on.Choices[0].TokenIDs, off.Choices[0].TokenIDs) ||
				!slices.Equal(on.Choices[0].Logprobs.TokenLogprobs, off.Choices[0].Logprobs.TokenLogprobs) {
				t.Errorf("with the cache: %v %v\nwithout:        %v %v", on.Choices[0].TokenIDs, on.Choices[0].Logprobs.TokenLogprobs,
					off.Choices[0].TokenIDs, off.Choices[0].Logprobs.TokenLogprobs)
			}
		})
	}
}

// TestKVBudgetQueues sends 16 concurrent requests to a coordinator whose
// KV-cache budget holds about 4 of them at once: every request completes,
// each equal to the same request run alone.
func TestKVBudgetQueues(t *testing.T) {
	path := "../../testdata/models/tiny-mixtral-f32.gguf"
	// tiny-mixtral: 2 layers × 2 KV heads × (16+16) values × 4 bytes per
	// position = 512 bytes; a request of 100 prompt + 40 generated
	// positions takes 5 blocks of 32 a layer, 10 in all, 40 KiB.
	c := start(t, Config{ModelPath: path, ExpertNodes: 2, KVCacheBytes: 4 * 10 * 32 * 512, NoPrefixCache: true})
	prompts := make([][]int32, 16)
	for i := range prompts {
		prompts[i] = make([]int32, 100)
		for j := range prompts[i] {
			prompts[i][j] = int32((i*31+j*7)%500) + 1
		}
	}
	body := func(p []int32) map[string]any {
		return map[string]any{"prompt": p, "max_tokens": 40, "temperature": 0, "return_token_ids": true}
	}
	alone := make([][]int32, len(prompts))
	for i, p := range prompts[:4] {
		alone[i] = complete(t, c, body(p)).Choices[0].TokenIDs
	}
	var wg sync.WaitGroup
	got := make([][]int32, len(prompts))
	errs := make([]error, len(prompts))
	for i, p := range prompts {
		wg.Go(func() {
			b, _ := json.Marshal(body(p))
			resp, err := http.Post(c.URL+"/v1/completions", "application/json", bytes.NewReader(b))
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			var r completion
			if resp.StatusCode != http.StatusOK || json.Unmarshal(out, &r) != nil || len(r.Choices) == 0 {
				errs[i] = fmt.Errorf("%s %s", resp.Status, out)
				return
			}
			got[i] = r.Choices[0].TokenIDs
		})
	}
	wg.Wait()
	for i := range prompts {
		if errs[i] != nil {
			t.Errorf("request %d: %v", i, errs[i])
			continue
		}
		if i < 4 && !slices.Equal(got[i], alone[i]) {
			t.Errorf("request %d under the budget: %v, alone %v", i, got[i], alone[i])
		}
		if len(got[i]) == 0 {
			t.Errorf("request %d generated nothing", i)
		}
	}
	for i, p := range prompts[4:] { // the rest alone, after the fact
		if want := complete(t, c, body(p)).Choices[0].TokenIDs; !slices.Equal(got[i+4], want) {
			t.Errorf("request %d under the budget: %v, alone %v", i+4, got[i+4], want)
		}
	}
}
