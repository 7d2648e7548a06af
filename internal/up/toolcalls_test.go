package up

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchyard-llm/switchyard/internal/demomodel"
	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
)

// mistralTemplate is of Mistral's family (it names [TOOL_CALLS], which is
// how chat.DetectFamily knows Mistral Nemo's) but renders the messages'
// text alone. Mistral Nemo's own ends its prompt with [/INST], whose [
// and ] the call needs: the repetition penalty that forces the call below
// sees the prompt's last 64 tokens, and would hold them down.
const mistralTemplate = `{#- calls are written [TOOL_CALLS][{"name": …, "arguments": …}] -#}
{%- for m in messages %}{{ m['content'] }}{% endfor %}`

// The forced call: [TOOL_CALLS] and a JSON array of one call, as Mistral
// Nemo writes them, each token once (the penalty keeps a written token
// from coming again). "" is a key the call may carry and the parser
// ignores; arguments left out are {}. The array closes with "])", the
// demo vocabulary's one token for a second ]: the ")" after the call is
// text, and comes back as the reply's content.
var (
	forcedPieces = []string{"[", "TO", "OL", "_", "C", "ALL", "S", "]", "Ġ[", "{", `"`, "name", `":`, `Ġ"`, "get", `",`, `""`, "Ġ:", "Ġ{", "}", "Ġ}", "])"}
	forcedText   = `[TOOL_CALLS] [{"name": "get","" : {} }])`
)

// The penalty that forcing uses, and the coordinator's window for it.
const (
	forceRepeatPenalty = 10
	penaltyWindow      = 64
	forceFreqPenalty   = 2   // what tells the second ] from the first
	forceMargin        = 0.5 // logits between the forced token and the next best
)

// forceCall finds a logit_bias under which the demo model, greedy with
// repetition_penalty forceRepeatPenalty, writes call (then end of
// sequence) after prompt: -100 for every other token, and for the call's
// tokens values such that each step's token leads the others by
// forceMargin, from the model's own logits at every position. It checks
// the bias with the real sampler before returning.
func forceCall(t *testing.T, f *model.File, tok *tokenizer.Tokenizer, prompt, call []int32) map[string]float64 {
	t.Helper()
	m, err := model.LoadLocal(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.KV, err = model.NewKVCache(m, model.KVCacheConfig{}); err != nil {
		t.Fatal(err)
	}
	seq := m.NewSequence()
	defer seq.Release()
	all := append(append([]int32{}, prompt...), call...)
	if err := seq.Reserve(len(all) + 1); err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(t.Context(), []model.Chunk{{Seq: seq, Tokens: all, AllLogits: true}})
	if err != nil {
		t.Fatal(err)
	}
	vocab := m.Hyper.Vocab
	logitsAt := func(k int) []float32 { p := len(prompt) - 1 + k; return out[0][p*vocab : (p+1)*vocab] }
	forced := append(append([]int32{}, call...), tok.EOS)
	bias := map[int32]float64{}
	for _, id := range forced {
		bias[id] = -60
	}
	// count is how often v is in the penalty window at step k.
	count := func(k int, v int32) int {
		hist := all[:len(prompt)+k]
		if len(hist) > penaltyWindow {
			hist = hist[len(hist)-penaltyWindow:]
		}
		n := 0
		for _, h := range hist {
			if h == v {
				n++
			}
		}
		return n
	}
	// value is what the sampler ranks token v by at step k
	// (sampling.Sampler's penalise).
	value := func(k int, v int32, l []float32) float64 {
		z := float64(l[v]) + bias[v]
		n := count(k, v)
		switch {
		case n == 0:
			return z
		case z > 0:
			z /= forceRepeatPenalty
		default:
			z *= forceRepeatPenalty
		}
		return z - float64(n)*forceFreqPenalty
	}
	// Raise each step's token above its rivals until none is raised.
	for range 200 {
		raised := false
		for k, t0 := range forced {
			l := logitsAt(k)
			best := -1e9
			for u := range int32(vocab) {
				if _, ok := bias[u]; !ok && float64(l[u])-100 > best {
					best = float64(l[u]) - 100
				}
			}
			for _, v := range forced {
				if v != t0 {
					best = max(best, value(k, v, l))
				}
			}
			if need := best + forceMargin - value(k, t0, l); need > 0 {
				if count(k, t0) > 0 {
					need *= forceRepeatPenalty // a penalised token gains a tenth of its bias
				}
				bias[t0] += need + 0.1
				raised = true
			}
		}
		if !raised {
			break
		}
	}
	out2 := map[string]float64{}
	full := map[int32]float32{}
	for u := range int32(vocab) {
		b, ok := bias[u]
		if !ok {
			b = -100
		}
		if b > 100 {
			for k, id := range forced {
				t.Logf("step %d: %q bias %.1f", k, tok.Token(id), bias[id])
			}
			t.Fatalf("forcing the call needs a bias of %.1f for %q, past OpenAI's 100", b, tok.Token(u))
		}
		out2[strconv.Itoa(int(u))], full[u] = b, float32(b)
	}
	// The real sampler, as the coordinator sets it up, writes the call.
	s, err := sampling.New(sampling.Params{TopP: 1, RepeatPenalty: forceRepeatPenalty, FrequencyPenalty: forceFreqPenalty, PenaltyLastN: penaltyWindow, LogitBias: full}, vocab)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range prompt {
		s.Accept(id)
	}
	for k, want := range forced {
		if got := s.Sample(logitsAt(k)).Token; got != want {
			t.Fatalf("forcing: step %d samples %q, want %q", k, tok.Token(got), tok.Token(want))
		}
		s.Accept(want)
	}
	return out2
}

// TestToolCallsEndToEnd serves the demo model with a Mistral-family
// template, forces the model to write a Mistral call through logit_bias,
// and checks that the official OpenAI Go SDK receives it as tool_calls,
// whole and streamed (its accumulator reassembling the deltas), with
// finish_reason tool_calls.
func TestToolCallsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	path, err := demomodel.Path(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := model.Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f.File)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.New("mistral-family", mistralTemplate, tok.Token(tok.BOS), tok.Token(tok.EOS))
	if err != nil {
		t.Fatal(err)
	}
	if fam := chat.DetectFamily(tmpl.Source); fam != chat.FamilyMistral {
		t.Fatalf("the template is of family %v, want mistral", fam)
	}
	// A question long enough that the penalty window holds only its words.
	question := strings.TrimSpace(strings.Repeat("What is the weather like in the city today and what should I wear outside ", 5))
	params := json.RawMessage(`{"type":"object"}`)
	text, err := tmpl.Render(chat.Conversation{AddGenerationPrompt: true, Messages: []chat.Message{{Role: "user", Content: question}},
		Tools: []chat.Tool{{Name: "get", Parameters: params}}, Vars: map[string]json.RawMessage{}})
	if err != nil {
		t.Fatal(err)
	}
	prompt := tok.Encode(text, true, true)
	var call []int32
	var written strings.Builder
	for _, p := range forcedPieces {
		id, ok := tok.Lookup(p)
		if !ok {
			t.Fatalf("the demo vocabulary has no token %q", p)
		}
		call = append(call, id)
		written.Write(tok.Piece(id))
	}
	if written.String() != forcedText {
		t.Fatalf("the forced tokens write %q, want %q", written.String(), forcedText)
	}
	bias := forceCall(t, f, tok, prompt, call)

	c := start(t, Config{CacheDir: dir, ChatTemplate: tmpl})
	client := openai.NewClient(option.WithBaseURL(c.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	req := openai.ChatCompletionNewParams{
		Model:    demomodel.Name,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(question)},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get",
			Parameters: openai.FunctionParameters{"type": "object"}})},
		MaxTokens:   openai.Int(int64(len(call) + 8)),
		Temperature: openai.Float(0),
	}
	opts := []option.RequestOption{option.WithJSONSet("logit_bias", bias), option.WithJSONSet("repetition_penalty", forceRepeatPenalty)}
	req.FrequencyPenalty = openai.Float(forceFreqPenalty)

	whole, err := client.Chat.Completions.New(t.Context(), req, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ch := whole.Choices[0]
	checkCall := func(how string, finish string, msg openai.ChatCompletionMessage) {
		t.Helper()
		if finish != "tool_calls" {
			t.Errorf("%s: finish_reason %q, want tool_calls", how, finish)
		}
		if msg.Content != ")" {
			t.Errorf("%s: content %q, want the \")\" written after the call", how, msg.Content)
		}
		if len(msg.ToolCalls) != 1 {
			t.Fatalf("%s: %d tool calls %+v, want 1", how, len(msg.ToolCalls), msg.ToolCalls)
		}
		tc := msg.ToolCalls[0]
		if tc.Type != "function" || tc.Function.Name != "get" || tc.Function.Arguments != "{}" {
			t.Errorf("%s: call %+v, want get with arguments {}", how, tc)
		}
		// Mistral's template refuses IDs that are not nine letters and digits.
		if len(tc.ID) != 9 || strings.Trim(tc.ID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			t.Errorf("%s: call ID %q, want nine letters and digits", how, tc.ID)
		}
	}
	checkCall("whole", ch.FinishReason, ch.Message)
	if whole.Usage.CompletionTokens != int64(len(call)+1) {
		t.Errorf("completion tokens %d, want the call's %d and end of sequence", whole.Usage.CompletionTokens, len(call))
	}

	stream := client.Chat.Completions.NewStreaming(t.Context(), req, opts...)
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 {
		t.Fatalf("streamed: %d choices", len(acc.Choices))
	}
	checkCall(fmt.Sprintf("streamed (%d chunks)", chunks), acc.Choices[0].FinishReason, acc.Choices[0].Message)
}
