package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

const templates = "../../testdata/templates/"

// templateConv is an entry of conversations.json.
type templateConv struct {
	Name     string `json:"name"`
	Messages []struct {
		Role             string `json:"role"`
		Content          string `json:"content"`
		ReasoningContent string `json:"reasoning_content"`
		ToolCalls        []struct {
			ID       string `json:"id"`
			Function struct {
				Name      string          `json:"name"`
				Arguments json.RawMessage `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"messages"`
}

// render is an entry of renders.json: what transformers renders, or why
// the template refused.
type render struct {
	OK  *string `json:"ok"`
	Err string  `json:"err"`
}

func readJSON(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(templates + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// fixtures are the released templates with their renders.
type fixtures struct {
	convs   map[string]templateConv
	renders map[string]render
}

func loadFixtures(t testing.TB) fixtures {
	var fx fixtures
	var convs, extra []templateConv
	readJSON(t, "conversations.json", &convs)
	readJSON(t, "parse-conversations.json", &extra)
	fx.convs = map[string]templateConv{}
	for _, c := range append(convs, extra...) {
		fx.convs[c.Name] = c
	}
	fx.renders = map[string]render{}
	var extraRenders map[string]render
	readJSON(t, "renders.json", &fx.renders)
	readJSON(t, "parse-renders.json", &extraRenders)
	for k, v := range extraRenders {
		fx.renders[k] = v
	}
	return fx
}

// released are the templates under testdata/templates: the family each
// is, the token that ends the assistant's turn in its renders, and the
// npm package whose vocabulary tokenizes its output ("" when the repo has
// none: bytes are fed one by one instead).
var released = []struct {
	file    string
	family  Family
	eot     string
	keepEOT bool // the model writes eot as part of the call (harmony's <|call|>)
	vocab   string
}{
	{"Qwen-Qwen3-0.6B.jinja", FamilyHermes, "<|im_end|>", false, "qwen3"},
	{"Qwen3-Coder.jinja", FamilyQwen3Coder, "<|im_end|>", false, "qwen3"},
	{"deepseek-ai-DeepSeek-V3.1.jinja", FamilyDeepSeek, "<｜end▁of▁sentence｜>", false, "deepseek_v3"},
	{"moonshotai-Kimi-K2.jinja", FamilyKimiK2, "<|im_end|>", false, ""},
	{"openai-gpt-oss-120b.jinja", FamilyHarmony, "<|call|>", true, "gptoss"},
	{"mistralai-Mistral-Nemo-Instruct-2407.jinja", FamilyMistral, "</s>", false, ""},
	{"meta-llama-Llama-3.1-8B-Instruct.jinja", FamilyLlama3, "<|eot_id|>", false, "llama3"},
	{"GLM-4.6.jinja", FamilyGLM, "<|observation|>", false, ""},
}

func TestDetectFamily(t *testing.T) {
	for _, r := range released {
		b, err := os.ReadFile(templates + r.file)
		if err != nil {
			t.Fatal(err)
		}
		if got := DetectFamily(string(b)); got != r.family {
			t.Errorf("%s: got %v, want %v", r.file, got, r.family)
		}
	}
	// Templates without tool calls: text and reasoning only.
	for _, f := range []string{"chatml.jinja", "mistral.jinja"} {
		b, err := os.ReadFile("../../testdata/chat/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if got := DetectFamily(string(b)); got != FamilyPlain {
			t.Errorf("%s: got %v, want plain", f, got)
		}
	}
	if got := DetectFamily(Plain); got != FamilyPlain {
		t.Errorf("Plain: got %v, want plain", got)
	}
}

// assistantOutput is what the model wrote in a render: the assistant's
// turn after the user's question ask, up to its end-of-turn token. The
// generation prompt that precedes it is what the template appends to the
// tools-user templateConv after its question ("Weather in Paris?").
func assistantOutput(t testing.TB, fx fixtures, file, conv, ask, eot string, keepEOT bool) string {
	t.Helper()
	gp := fx.renders[file+"|tools-user"]
	if gp.OK == nil {
		t.Fatalf("%s|tools-user: %s", file, gp.Err)
	}
	const q = "Weather in Paris?"
	genPrompt := (*gp.OK)[strings.Index(*gp.OK, q)+len(q):]
	r := fx.renders[file+"|"+conv]
	if r.OK == nil {
		t.Fatalf("%s|%s: %s", file, conv, r.Err)
	}
	i := strings.Index(*r.OK, ask+genPrompt)
	if i < 0 {
		t.Fatalf("%s|%s: no %q", file, conv, ask+genPrompt)
	}
	out := (*r.OK)[i+len(ask+genPrompt):]
	j := strings.Index(out, eot)
	if j < 0 {
		t.Fatalf("%s|%s: no %q after the question", file, conv, eot)
	}
	if keepEOT {
		j += len(eot)
	}
	return out[:j]
}

// call is a tool call as the tests compare it.
type call struct{ ID, Name, Args string }

// reply is what a Parser's deltas add up to.
type reply struct {
	Text, Reasoning string
	Calls           []call
	Errs            []error // of text deltas that are markup
}

// wantCalls are the tool calls of a templateConv's assistant turn.
func wantCalls(t testing.TB, c templateConv) []call {
	t.Helper()
	for _, m := range c.Messages {
		if m.Role != "assistant" || len(m.ToolCalls) == 0 {
			continue
		}
		var out []call
		for _, tc := range m.ToolCalls {
			out = append(out, call{ID: tc.ID, Name: tc.Function.Name, Args: string(tc.Function.Arguments)})
		}
		return out
	}
	t.Fatalf("%s: no assistant tool calls", c.Name)
	return nil
}

// run feeds chunks to a parser and returns what they add up to, checking
// the stream's shape on the way.
func run(t testing.TB, cfg ParserConfig, chunks []string) (reply, []Delta) {
	t.Helper()
	p, err := NewParser(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ds []Delta
	for _, c := range chunks {
		ds = append(ds, p.Push(c)...)
	}
	ds = append(ds, p.Finish()...)
	if more := append(p.Push("x"), p.Finish()...); len(more) > 0 {
		t.Errorf("deltas after Finish: %+v", more)
	}
	in := strings.Join(chunks, "")
	if err := checkStream(ds, utf8.ValidString(in)); err != nil {
		t.Fatalf("%v\ninput %q\ndeltas %+v", err, in, ds)
	}
	var r reply
	for _, d := range ds {
		switch d.Kind {
		case KindText:
			r.Text += d.Text
			if d.Err != nil {
				r.Errs = append(r.Errs, d.Err)
			}
		case KindReasoning:
			r.Reasoning += d.Text
		case KindCallStart:
			r.Calls = append(r.Calls, call{ID: d.ID, Name: d.Name})
		case KindCallArgs:
			r.Calls[len(r.Calls)-1].Args += d.Text
		}
	}
	return r, ds
}

// checkStream checks a reply's deltas are well formed: text and reasoning
// not empty (and whole characters when the input was), each call opened
// once in order before its arguments, IDs unique, one KindFinish at the
// end counting the calls.
func checkStream(ds []Delta, validUTF8 bool) error {
	calls, ids := 0, map[string]bool{}
	for i, d := range ds {
		switch d.Kind {
		case KindText, KindReasoning:
			if d.Text == "" {
				return fmt.Errorf("delta %d: empty %v", i, d.Kind)
			}
			if validUTF8 && !utf8.ValidString(d.Text) {
				return fmt.Errorf("delta %d: %v %q splits a character", i, d.Kind, d.Text)
			}
			if d.Err != nil && d.Kind != KindText {
				return fmt.Errorf("delta %d: Err on %v", i, d.Kind)
			}
		case KindCallStart:
			if d.Index != calls || d.Name == "" || d.ID == "" || ids[d.ID] {
				return fmt.Errorf("delta %d: call start %+v after %d calls (IDs %v)", i, d, calls, ids)
			}
			ids[d.ID] = true
			calls++
		case KindCallArgs:
			if calls == 0 || d.Index != calls-1 {
				return fmt.Errorf("delta %d: arguments of call %d after %d calls", i, d.Index, calls)
			}
			if i+1 < len(ds) && ds[i+1].Kind == KindCallArgs {
				continue
			}
			var args string
			for j := i; j >= 0 && ds[j].Kind == KindCallArgs; j-- {
				args = ds[j].Text + args
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(args), &obj); err != nil {
				return fmt.Errorf("delta %d: call %d's arguments %q are not a JSON object: %v", i, d.Index, args, err)
			}
		case KindFinish:
			if i != len(ds)-1 || d.Calls != calls {
				return fmt.Errorf("delta %d of %d: finish %+v after %d calls", i, len(ds), d, calls)
			}
		default:
			return fmt.Errorf("delta %d: kind %v", i, d.Kind)
		}
	}
	if len(ds) == 0 || ds[len(ds)-1].Kind != KindFinish {
		return fmt.Errorf("no finish")
	}
	return nil
}

// sameJSON reports whether two JSON texts hold equal values.
func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

var openAIIDShape = regexp.MustCompile(`^call_[A-Za-z0-9]{24}$`)

// checkCalls compares calls with what they should be. An ID the test
// cannot know (random) is checked for its shape.
func checkCalls(t *testing.T, got, want []call, idShape *regexp.Regexp) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d calls %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || !sameJSON(g.Args, w.Args) {
			t.Errorf("call %d: got %s(%s), want %s(%s)", i, g.Name, g.Args, w.Name, w.Args)
		}
		switch {
		case idShape == nil && g.ID != w.ID:
			t.Errorf("call %d: got ID %q, want %q", i, g.ID, w.ID)
		case idShape != nil && !idShape.MatchString(g.ID):
			t.Errorf("call %d: got ID %q, want one like %v", i, g.ID, idShape)
		}
	}
}

// feeders cut a reply into the deltas a detokenizer would give.
type feeder struct {
	name string
	cut  func(t *testing.T, s string) []string
}

func feeders(vocab string) []feeder {
	fs := []feeder{
		{"whole", func(_ *testing.T, s string) []string { return []string{s} }},
		{"bytes", func(_ *testing.T, s string) []string {
			out := make([]string, len(s))
			for i := range len(s) {
				out[i] = s[i : i+1]
			}
			return out
		}},
		{"chunks", func(_ *testing.T, s string) []string { return randomCuts(rand.New(rand.NewPCG(1, uint64(len(s)))), s) }},
	}
	if vocab != "" {
		fs = append(fs, feeder{"tokens-" + vocab, func(t *testing.T, s string) []string { return tokenPieces(t, vocab, s) }})
	}
	return fs
}

// randomCuts cuts s at random places, into pieces of 1 to 8 bytes.
func randomCuts(r *rand.Rand, s string) []string {
	var out []string
	for len(s) > 0 {
		n := min(len(s), 1+r.IntN(8))
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// A case is a reply in a family's format and what it must parse to.
type replyCase struct {
	name        string
	out         string
	cfg         ParserConfig
	want        reply
	idShape     *regexp.Regexp // nil: IDs are the model's own, as in want
	wantUncalls int            // text deltas that must carry a malformed-call error
}

func TestReleasedFamilies(t *testing.T) {
	fx := loadFixtures(t)
	for _, rel := range released {
		t.Run(rel.family.String(), func(t *testing.T) {
			for _, c := range releasedCases(t, fx, rel.file, rel.family, rel.eot, rel.keepEOT) {
				t.Run(c.name, func(t *testing.T) { checkCase(t, c, rel.vocab) })
			}
		})
	}
}

const thought = "Let me look it up."

// releasedCases are the replies of a released template's family, built
// from its renders, with what each must parse to: the calls are the
// conversations' own.
func releasedCases(t testing.TB, fx fixtures, file string, fam Family, eot string, keepEOT bool) []replyCase {
	roundtrip, parallel := fx.convs["tools-roundtrip"], fx.convs["tools-reasoning-parallel"]
	const (
		ask         = "Weather in Paris?"
		askParallel = "Weather in Paris for 2 days, and the time in Tōkyō?"
	)
	reasoning := parallel.Messages[1].ReasoningContent
	oneCall, twoCalls := wantCalls(t, roundtrip), wantCalls(t, parallel)
	idShape := openAIIDShape
	switch fam {
	case FamilyKimiK2:
		// Kimi's template numbers calls functions.NAME:INDEX, its IDs.
		idShape = nil
		oneCall[0].ID = "functions.get_weather:0"
		twoCalls[0].ID, twoCalls[1].ID = "functions.get_weather:0", "functions.get_time:1"
	case FamilyMistral:
		idShape = nil // the model's own, as the render has them
	}

	// Several calls, and reasoning where the template renders it.
	var cases []replyCase
	switch fam {
	case FamilyLlama3:
		// The template refuses two calls in one turn: they are written one
		// after the other in its format.
		cases = append(cases, replyCase{name: "several",
			out:  assistantOutput(t, fx, file, "tools-roundtrip", ask, eot, keepEOT) + "\n" + `{"name": "get_time", "parameters": {"city": "Tōkyō"}}`,
			want: reply{Calls: []call{oneCall[0], twoCalls[1]}}})
	case FamilyHarmony:
		// The template renders one call per message, so only the first of
		// two; the second follows as its own message, as the format has it.
		cases = append(cases, replyCase{name: "several",
			out: assistantOutput(t, fx, file, "tools-reasoning-parallel", askParallel, eot, keepEOT) +
				`<|start|>assistant to=functions.get_time<|channel|>commentary json<|message|>{"city": "Tōkyō"}<|call|>`,
			want: reply{Reasoning: reasoning, Calls: twoCalls}})
	default:
		out := assistantOutput(t, fx, file, "tools-reasoning-parallel", askParallel, eot, keepEOT)
		c := replyCase{name: "several", out: out, want: reply{Calls: twoCalls}}
		if strings.Contains(out, reasoning) {
			c.want.Reasoning = reasoning
		}
		cases = append(cases, c)
	}

	// One call: the round trip's, or for Mistral, whose template refuses
	// that templateConv, the two above.
	one, calls := "", twoCalls
	if r := fx.renders[file+"|tools-roundtrip"]; r.OK != nil {
		one, calls = assistantOutput(t, fx, file, "tools-roundtrip", ask, eot, keepEOT), oneCall
		cases = append(cases, replyCase{name: "call", out: one, want: reply{Calls: calls}})
	} else {
		one = cases[0].out
	}

	// Reasoning before it, in the family's syntax.
	switch fam {
	case FamilyHarmony:
		cases = append(cases,
			replyCase{name: "analysis", out: "<|channel|>analysis<|message|>" + thought + "<|end|><|start|>assistant" + one,
				want: reply{Reasoning: thought, Calls: calls}},
			replyCase{name: "reasoning-none", out: "<|channel|>analysis<|message|>" + thought + "<|end|><|start|>assistant" + one,
				cfg:  ParserConfig{Reasoning: ReasoningNone},
				want: reply{Text: "<|channel|>analysis<|message|>" + thought + "<|end|>", Calls: calls}})
	case FamilyMistral:
		// No reasoning syntax: <think> is text.
		cases = append(cases, replyCase{name: "think-is-text", out: "<think>\n" + thought + "\n</think>\n\n" + one,
			want: reply{Text: "<think>\n" + thought + "\n</think>", Calls: calls}})
	default:
		cases = append(cases,
			replyCase{name: "think", out: "<think>\n" + thought + "\n</think>\n\n" + one,
				want: reply{Reasoning: thought, Calls: calls}},
			replyCase{name: "think-open", out: thought + "\n</think>\n\n" + one,
				cfg:  ParserConfig{InReasoning: true},
				want: reply{Reasoning: thought, Calls: calls}},
			// Reasoning left in the text, GLM's empty think block too.
			replyCase{name: "reasoning-none", out: "<think>\n" + thought + "\n</think>\n\n" + one,
				cfg: ParserConfig{Reasoning: ReasoningNone},
				want: reply{Text: strings.TrimRight("<think>\n"+thought+"\n</think>\n\n"+
					one[:len(one)-len(strings.TrimPrefix(one, "\n<think></think>"))], "\n"), Calls: calls}})
	}

	// Text before the call.
	switch fam {
	case FamilyLlama3: // its call is the whole reply
	case FamilyHarmony: // text is a message of its own: a preamble
		cases = append(cases, replyCase{name: "text-first",
			out:  "<|channel|>commentary<|message|>I will check.<|end|><|start|>assistant" + one,
			want: reply{Text: "I will check.", Calls: calls}})
	default:
		// GLM's template puts an empty think block first; here the text is.
		cases = append(cases, replyCase{name: "text-first", out: "I will check.\n\n" + strings.TrimPrefix(one, "\n<think></think>"),
			want: reply{Text: "I will check.", Calls: calls}})
	}
	// Without tools in the request, it is all text.
	cases = append(cases, replyCase{name: "no-tools", out: one, cfg: ParserConfig{Reasoning: ReasoningNone, ToolCalls: false},
		want: reply{Text: one}})
	for i := range cases {
		c := &cases[i]
		c.cfg.Family = fam
		if c.name != "no-tools" {
			c.cfg.ToolCalls = true
		}
		c.idShape = idShape
	}
	return cases
}

func checkCase(t *testing.T, c replyCase, vocab string) {
	for _, f := range feeders(vocab) {
		t.Run(f.name, func(t *testing.T) {
			got, _ := run(t, c.cfg, f.cut(t, c.out))
			if got.Text != c.want.Text || got.Reasoning != c.want.Reasoning {
				t.Errorf("got text %q reasoning %q, want %q and %q", got.Text, got.Reasoning, c.want.Text, c.want.Reasoning)
			}
			checkCalls(t, got.Calls, c.want.Calls, c.idShape)
			if len(got.Errs) != c.wantUncalls {
				t.Errorf("got %d malformed-call texts %v, want %d", len(got.Errs), got.Errs, c.wantUncalls)
			}
			for _, err := range got.Errs {
				if !errors.Is(err, ErrMalformedCall) {
					t.Errorf("got error %v, want ErrMalformedCall", err)
				}
			}
		})
	}
}

// malformedEdits break a family's real call: its arguments, in the
// family's syntax.
var malformedEdits = map[Family][2]string{
	FamilyHermes:     {`"days": 2}}`, `"days": 2}`},
	FamilyQwen3Coder: {"</function>\n", ""},
	FamilyDeepSeek:   {`"days": 2}`, `"days": 2`},
	FamilyKimiK2:     {`"days": 2}`, `"days": 2`},
	FamilyHarmony:    {`"days": 2}`, `"days": 2`},
	FamilyMistral:    {`"days": 2}`, `"days": 2`},
	FamilyLlama3:     {`"days": 2}}`, `"days": 2}`},
	FamilyGLM:        {"<arg_value>2</arg_value>", "<arg_value>2"},
}

// TestMalformedCalls breaks each family's rendered call (its name, its
// arguments, or the reply's end cutting it off) and checks it comes back
// as text, every byte of it, marked as a malformed call.
func TestMalformedCalls(t *testing.T) {
	fx := loadFixtures(t)
	for _, rel := range released {
		t.Run(rel.family.String(), func(t *testing.T) {
			conv, ask := "tools-roundtrip", "Weather in Paris?"
			if fx.renders[rel.file+"|"+conv].OK == nil {
				conv, ask = "tools-reasoning-parallel", "Weather in Paris for 2 days, and the time in Tōkyō?"
			}
			out := assistantOutput(t, fx, rel.file, conv, ask, rel.eot, rel.keepEOT)
			e := malformedEdits[rel.family]
			broken := map[string]string{
				"name":      strings.Replace(out, "get_weather", "get weather", 1),
				"arguments": strings.Replace(out, e[0], e[1], 1),
				"cut-off":   out[:strings.Index(out, "Paris")+len("Paris")],
			}
			for name, in := range broken {
				if in == out {
					t.Fatalf("%s: edit %q left %q as it was", name, e, out)
				}
				c := replyCase{name: name, out: in, wantUncalls: 1,
					cfg:  ParserConfig{Family: rel.family, ToolCalls: true, Reasoning: ReasoningNone},
					want: reply{Text: in}}
				t.Run(name, func(t *testing.T) { checkCase(t, c, rel.vocab) })
			}
		})
	}
}
