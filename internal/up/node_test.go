package up

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchyard-llm/switchyard/internal/demomodel"
)

// nodeSDK is where .ci/run installs the npm openai package
// (package-lock.json).
const nodeSDK = "../../testdata/openai-node/"

// needNodeSDK skips, or under CI=true fails, when node or the package is
// missing.
func needNodeSDK(t *testing.T) {
	var missing []string
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node (apt-get install nodejs npm)")
	}
	if _, err := os.Stat(nodeSDK + "node_modules/openai/package.json"); err != nil {
		missing = append(missing, "the openai package (npm ci in testdata/openai-node)")
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing under CI: %s", strings.Join(missing, ", "))
	}
	t.Skipf("missing: %s", strings.Join(missing, ", "))
}

// nodeReport is what sdk.mjs prints.
type nodeReport struct {
	Models    []string `json:"models"`
	Model     struct{ ID, Object string }
	Developer string `json:"developer"`
	N3        struct {
		Contents []string `json:"contents"`
		Indexes  []int    `json:"indexes"`
		Usage    struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	} `json:"n3"`
	Sampled struct {
		Whole    []string `json:"whole"`
		Streamed []string `json:"streamed"`
	} `json:"sampled"`
	RoundTrip struct {
		Finish       string `json:"finish"`
		PromptTokens int    `json:"promptTokens"`
	} `json:"roundTrip"`
	Forced struct {
		Whole, Streamed nodeCall
	} `json:"forced"`
	Refused map[string]struct {
		Status     int    `json:"status"`
		Param      string `json:"param"`
		Message    string `json:"message"`
		BadRequest bool   `json:"badRequest"`
	} `json:"refused"`
}

// nodeCall is a choice's finish reason and tool calls.
type nodeCall struct {
	Finish string `json:"finish"`
	Calls  []struct {
		ID, Name, Arguments string
	} `json:"calls"`
}

// TestNodeSDK runs the official OpenAI Node SDK (npm openai, pinned by
// testdata/openai-node's lockfile) against `up` on the demo model: models
// listed and retrieved, the developer role, n = 3 whole and streamed (its
// stream helper reassembles the choices), a tool round trip with the
// accepted-and-ignored fields, and each refused field as the SDK's
// BadRequestError. Answers are checked against the Go SDK's for the same
// requests.
func TestNodeSDK(t *testing.T) {
	needNodeSDK(t)
	c := start(t, Config{})
	cmd := exec.CommandContext(t.Context(), "node", "sdk.mjs", c.URL+"/v1", demomodel.Name)
	cmd.Dir = nodeSDK
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node sdk.mjs: %v\n%s", err, stderr.String())
	}
	var got nodeReport
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	client := openai.NewClient(option.WithBaseURL(c.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	question := openai.UserMessage("How do I open a file?")
	goChat := func(p openai.ChatCompletionNewParams) *openai.ChatCompletion {
		t.Helper()
		p.Model = demomodel.Name
		cc, err := client.Chat.Completions.New(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	greedy := func(msgs ...openai.ChatCompletionMessageParamUnion) *openai.ChatCompletion {
		return goChat(openai.ChatCompletionNewParams{Messages: msgs, MaxTokens: openai.Int(16), Temperature: openai.Float(0)})
	}

	if !slices.Equal(got.Models, []string{demomodel.Name}) || got.Model.ID != demomodel.Name || got.Model.Object != "model" {
		t.Errorf("models %v, retrieved %+v", got.Models, got.Model)
	}
	if want := greedy(openai.SystemMessage("Answer with Python."), question).Choices[0].Message.Content; got.Developer != want {
		t.Errorf("developer: %q, the Go SDK with system: %q", got.Developer, want)
	}
	one := greedy(question)
	if len(got.N3.Contents) != 3 || !slices.Equal(got.N3.Indexes, []int{0, 1, 2}) {
		t.Fatalf("n = 3: %+v", got.N3)
	}
	for i, s := range got.N3.Contents {
		if s != one.Choices[0].Message.Content {
			t.Errorf("n = 3, choice %d: %q, want %q", i, s, one.Choices[0].Message.Content)
		}
	}
	if u := got.N3.Usage; int64(u.PromptTokens) != one.Usage.PromptTokens || int64(u.CompletionTokens) != 3*one.Usage.CompletionTokens {
		t.Errorf("n = 3 usage %+v, want %d prompt and %d completion tokens", u, one.Usage.PromptTokens, 3*one.Usage.CompletionTokens)
	}
	sampled := goChat(openai.ChatCompletionNewParams{Messages: []openai.ChatCompletionMessageParamUnion{question},
		MaxTokens: openai.Int(24), Temperature: openai.Float(1), Seed: openai.Int(11), N: openai.Int(3)})
	var want []string
	for _, ch := range sampled.Choices {
		want = append(want, ch.Message.Content)
	}
	if !slices.Equal(got.Sampled.Whole, want) || !slices.Equal(got.Sampled.Streamed, want) {
		t.Errorf("sampled n = 3: whole %q, streamed %q; the Go SDK %q", got.Sampled.Whole, got.Sampled.Streamed, want)
	}
	if got.RoundTrip.Finish == "" || got.RoundTrip.PromptTokens == 0 {
		t.Errorf("tool round trip: %+v", got.RoundTrip)
	}
	// The forced call: the same arguments as the Go SDK's, whole and
	// reassembled from the stream's deltas (IDs are the server's, new each
	// time).
	fp := openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}}
	forced := goChat(openai.ChatCompletionNewParams{Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")},
		MaxTokens: openai.Int(64), Temperature: openai.Float(0.3), Seed: openai.Int(5),
		Tools:      []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather", Parameters: fp})},
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")}})
	goCall := forced.Choices[0].Message.ToolCalls
	if len(goCall) != 1 {
		t.Fatalf("the Go SDK's forced call: %+v", forced.Choices[0].Message)
	}
	for how, nc := range map[string]nodeCall{"whole": got.Forced.Whole, "streamed": got.Forced.Streamed} {
		if nc.Finish != "tool_calls" || len(nc.Calls) != 1 || nc.Calls[0].Name != "get_weather" || !strings.HasPrefix(nc.Calls[0].ID, "call_") ||
			nc.Calls[0].Arguments != goCall[0].Function.Arguments {
			t.Errorf("Node SDK forced call %s: %+v, want get_weather(%s), finish tool_calls", how, nc, goCall[0].Function.Arguments)
		}
	}

	for field, w := range map[string]struct{ param, phrase string }{
		"response_format":    {"response_format.json_schema.schema", "must be a JSON schema object"},
		"audio":              {"audio", "audio output is not supported"},
		"prediction":         {"prediction", "not supported"},
		"web_search_options": {"web_search_options", "not supported"},
		"image":              {"messages[0].content[0]", "this model reads text only"},
		"max_tokens":         {"max_tokens", "maximum context length is 256 tokens"},
	} {
		r, ok := got.Refused[field]
		if !ok || r.Status != 400 || !r.BadRequest || r.Param != w.param || !strings.Contains(r.Message, w.phrase) {
			t.Errorf("%s: %+v, want a BadRequestError for %s saying %q", field, r, w.param, w.phrase)
		}
	}
}
