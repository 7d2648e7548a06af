package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/grammar"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// Constrained output (DESIGN.md §9): a request's response_format, grammar
// or forced tool call compiles to a pkg/grammar Grammar, each choice gets
// a Matcher, and every sampling step draws from the tokens its mask allows
// (before temperature and top-k), then advances it by the token drawn.

const (
	// maxGrammars is how many compiled grammars a coordinator keeps. A
	// grammar's masks are what make it fast after its first requests, so
	// agents that send the same schema again find it warm.
	maxGrammars = 16
	// grammarCacheBytes bounds each grammar's memoised states and masks
	// (maxGrammars of them at most).
	grammarCacheBytes = 16 << 20
)

var grammarLimits = grammar.Limits{CacheBytes: grammarCacheBytes}

// grammars holds the model's vocabulary as the grammar engine masks it,
// built on first use, and the grammars compiled lately, by their source.
// Its zero value is ready; it is safe for concurrent use (admit runs on
// the RPC goroutines).
type grammars struct {
	once     sync.Once
	vocab    *grammar.Vocab
	controls map[string]int32 // control tokens' texts
	longest  int              // the longest of them, in bytes

	mu    sync.Mutex
	cache map[string]*grammar.Grammar
	order []string // keys, least recently used first
}

// controlBytes is how the grammar engine sees control token id: a 0xFF
// byte, which valid UTF-8 never holds, and the ID. No grammar of text
// (JSON, a schema, GBNF, whose every character is UTF-8) can match it, so
// a JSON string never ends up holding <|im_end|>; only call markup, which
// names the control tokens it writes (markup), does.
func controlBytes(id int32) []byte {
	return []byte{0xFF, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
}

// vocabOf is the model's vocabulary: each token's bytes (controlBytes for
// control tokens, empty for IDs past the tokenizer's, which the mask never
// allows), and the end-of-sequence token.
func (gs *grammars) vocabOf(tok *tokenizer.Tokenizer, size int) *grammar.Vocab {
	gs.once.Do(func() {
		tokens := make([][]byte, size)
		gs.controls = map[string]int32{}
		for id := range tokens {
			tokens[id] = tok.Piece(int32(id))
			if id < tok.VocabSize() && tok.IsControl(int32(id)) && tok.Token(int32(id)) != "" {
				tokens[id] = controlBytes(int32(id))
				text := tok.Token(int32(id))
				gs.controls[text], gs.longest = int32(id), max(gs.longest, len(text))
			}
		}
		gs.vocab = grammar.NewVocab(tokens, tok.EOS)
	})
	return gs.vocab
}

// markup is call markup as the grammar must match it: the texts of
// control tokens in it (<|channel|>, [TOOL_CALLS], …) written as their
// controlBytes, the longest first, the rest as it is. The model writes
// them as the control tokens they are, which is how it was trained to.
func (gs *grammars) markup(s string) string {
	var out []byte
	for i := 0; i < len(s); {
		n := 0
		for l := min(gs.longest, len(s)-i); l > 0; l-- {
			if _, ok := gs.controls[s[i:i+l]]; ok {
				n = l
				break
			}
		}
		if n == 0 {
			out = append(out, s[i])
			i++
			continue
		}
		out = append(out, controlBytes(gs.controls[s[i:i+n]])...)
		i += n
	}
	return string(out)
}

// get returns the grammar cached under key, or compiles and caches it.
func (gs *grammars) get(key string, compile func() (*grammar.Grammar, error)) (*grammar.Grammar, error) {
	gs.mu.Lock()
	if g, ok := gs.cache[key]; ok {
		gs.touch(key)
		gs.mu.Unlock()
		return g, nil
	}
	gs.mu.Unlock()
	g, err := compile() // outside the lock: a large schema takes a while
	if err != nil {
		return nil, err
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if old, ok := gs.cache[key]; ok { // compiled meanwhile by another request
		gs.touch(key)
		return old, nil
	}
	if gs.cache == nil {
		gs.cache = map[string]*grammar.Grammar{}
	}
	if len(gs.order) >= maxGrammars {
		delete(gs.cache, gs.order[0])
		gs.order = gs.order[1:]
	}
	gs.cache[key] = g
	gs.order = append(gs.order, key)
	return g, nil
}

func (gs *grammars) touch(key string) {
	for i, k := range gs.order {
		if k == key {
			gs.order = append(append(gs.order[:i:i], gs.order[i+1:]...), key)
			return
		}
	}
}

// constraintOf compiles what req constrains its output to, or returns nil
// when it constrains nothing. A grammar it cannot compile is
// InvalidArgument, with the engine's words (which name the construct).
func (c *Coordinator) constraintOf(req *pb.GenerateRequest) (*grammar.Grammar, error) {
	forced := req.ToolChoice == pb.ToolChoice_TOOL_CHOICE_REQUIRED || req.ToolChoice == pb.ToolChoice_TOOL_CHOICE_FUNCTION
	if forced && req.Constraint != nil {
		return nil, invalid("a forced tool_choice and a response format or grammar both constrain the output; send one")
	}
	var key, what string
	var compile func() (*grammar.Grammar, error)
	switch x := req.Constraint.(type) {
	case *pb.GenerateRequest_JsonObject:
		if !x.JsonObject {
			return nil, nil
		}
		key, what, compile = "json_object", "response_format json_object", func() (*grammar.Grammar, error) { return grammar.JSONObject(), nil }
	case *pb.GenerateRequest_JsonSchema:
		key, what = "json_schema\x00"+x.JsonSchema, "response_format json_schema"
		compile = func() (*grammar.Grammar, error) { return grammar.FromJSONSchema([]byte(x.JsonSchema), grammarLimits) }
	case *pb.GenerateRequest_Grammar:
		key, what = "gbnf\x00"+x.Grammar, "grammar"
		compile = func() (*grammar.Grammar, error) { return grammar.ParseGBNF(x.Grammar, grammarLimits) }
	default:
		if !forced {
			return nil, nil
		}
		if len(req.Messages) == 0 || c.tmpl == nil {
			return nil, invalid("tool_choice forces a call, which only a chat request can make")
		}
		family := chat.DetectFamily(c.tmpl.Source)
		tools, err := forcedTools(req)
		if err != nil {
			return nil, err
		}
		k, err := json.Marshal(tools)
		if err != nil {
			return nil, fmt.Errorf("coordinator: forced call key: %w", err)
		}
		key, what = "call\x00"+family.String()+"\x00"+string(k), "tool_choice"
		c.grammars.vocabOf(c.tok, c.model.Vocab) // its control tokens, for markup
		compile = func() (*grammar.Grammar, error) { return forcedCall(family, tools, c.grammars.markup) }
	}
	g, err := c.grammars.get(key, compile)
	if err != nil {
		if isRequestError(err) {
			return nil, invalid("%s: %v", what, err)
		}
		return nil, fmt.Errorf("coordinator: compile %s: %w", what, err)
	}
	return g, nil
}

// isRequestError reports whether a grammar error is the request's fault.
func isRequestError(err error) bool {
	for _, e := range []error{grammar.ErrSyntax, grammar.ErrInvalid, grammar.ErrUnsupported, grammar.ErrLimit, errNoCallFormat} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// forcedTool is a tool a forced call may name, with its parameters' schema.
type forcedTool struct {
	Name       string `json:"name"`
	Parameters string `json:"parameters"`
}

// forcedTools lists the tools tool_choice allows: the named one, or all.
func forcedTools(req *pb.GenerateRequest) ([]forcedTool, error) {
	var out []forcedTool
	for _, t := range req.Tools {
		if req.ToolChoice == pb.ToolChoice_TOOL_CHOICE_FUNCTION && t.Name != req.ToolChoiceFunction {
			continue
		}
		out = append(out, forcedTool{Name: t.Name, Parameters: t.Parameters})
	}
	if len(out) == 0 {
		return nil, invalid("tool_choice forces a call, but there is no tool to call")
	}
	return out, nil
}

// errNoCallFormat: the template family has no call format a forced call
// can be written in yet.
var errNoCallFormat = errors.New("no forced call format")

// callFormat is how a family writes one call, as its chat template
// renders an assistant's tool call (shared/testdata/templates) and its
// parser (pkg/chat) reads it back: before the function's name, between the
// name and the arguments' JSON, and after them. The name is a JSON string
// unless rawName.
type callFormat struct {
	open, mid, close string
	rawName          bool
}

var callFormats = map[chat.Family]callFormat{
	// The plain template writes a call as a JSON line of its own.
	chat.FamilyPlain:  {open: `{"name": `, mid: `, "arguments": `, close: `}`},
	chat.FamilyHermes: {open: "<tool_call>\n{\"name\": ", mid: `, "arguments": `, close: "}\n</tool_call>"},
	chat.FamilyLlama3: {open: `{"name": `, mid: `, "parameters": `, close: `}`},
	// DeepSeek-V3.1's; the parser reads V3's and R1's too.
	chat.FamilyDeepSeek: {open: "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>", mid: "<｜tool▁sep｜>", close: "<｜tool▁call▁end｜><｜tool▁calls▁end｜>", rawName: true},
	chat.FamilyKimiK2: {open: "<|tool_calls_section_begin|><|tool_call_begin|>functions.", mid: ":0<|tool_call_argument_begin|>",
		close: "<|tool_call_end|><|tool_calls_section_end|>", rawName: true},
	// A message to the function on the commentary channel; <|call|> ends
	// generation.
	chat.FamilyHarmony: {open: "<|channel|>commentary to=functions.", mid: " <|constrain|>json<|message|>", close: "<|call|>", rawName: true},
	chat.FamilyMistral: {open: `[TOOL_CALLS][{"name": `, mid: `, "arguments": `, close: `}]`},
}

// forcedCall is the grammar of one call of one of tools, in the family's
// format, its arguments those its parameters' schema allows; markup gives
// the format's text as the grammar matches it (grammars.markup).
func forcedCall(family chat.Family, tools []forcedTool, markup func(string) string) (*grammar.Grammar, error) {
	f, ok := callFormats[family]
	if !ok {
		return nil, fmt.Errorf("%w: forcing a call is not available for the %s template family yet", errNoCallFormat, family)
	}
	var calls []*grammar.Grammar
	for _, t := range tools {
		args := grammar.JSONObject()
		if t.Parameters != "" {
			var err error
			if args, err = grammar.FromJSONSchema([]byte(t.Parameters), grammarLimits); err != nil {
				return nil, fmt.Errorf("the parameters of %s: %w", t.Name, err)
			}
		}
		name := t.Name // a tool name is letters, digits, _ and - (the router checks)
		if !f.rawName {
			b, err := json.Marshal(t.Name)
			if err != nil {
				return nil, fmt.Errorf("coordinator: tool name: %w", err)
			}
			name = string(b)
		}
		call, err := grammar.Seq(grammarLimits, grammar.Literal(markup(f.open)+name+markup(f.mid)), args, grammar.Literal(markup(f.close)))
		if err != nil {
			return nil, fmt.Errorf("the call of %s: %w", t.Name, err)
		}
		calls = append(calls, call)
	}
	if len(calls) == 1 {
		return calls[0], nil
	}
	return grammar.Alt(grammarLimits, calls...)
}

// constraint is one choice's place in its grammar, and the buffer its
// masks are written to. The scheduler's goroutine owns it.
type constraint struct {
	m    *grammar.Matcher
	bits []uint64
}

// newConstraint starts a choice at the beginning of g, then past the
// tokens it had generated before a resume.
func newConstraint(g *grammar.Grammar, v *grammar.Vocab, resumed []int32) (*constraint, error) {
	c := &constraint{m: g.NewMatcher(v), bits: make([]uint64, (v.Size()+63)/64)}
	for i, t := range resumed {
		if err := c.m.Accept(t); err != nil {
			return nil, invalid("resumed token %d at %d does not follow the grammar: %v", t, i, err)
		}
	}
	return c, nil
}

// draw samples r's next token: from the tokens its grammar allows, which
// it then advances past the token, when r is constrained.
func (r *genRequest) draw(logits []float32) (sampling.Result, error) {
	c := r.constraint
	if c == nil {
		return r.sampler.Sample(logits), nil
	}
	c.m.Mask(c.bits)
	res, err := r.sampler.SampleMasked(logits, c.bits)
	if err != nil {
		return res, fmt.Errorf("constrained sampling: %w", err)
	}
	if err := c.m.Accept(res.Token); err != nil {
		return res, fmt.Errorf("constrained sampling: %w", err)
	}
	return res, nil
}

// complete reports whether r's grammar has ended and allows nothing more
// (false when r is unconstrained): the choice is over, without waiting a
// step for the end-of-sequence token.
func (r *genRequest) complete() bool {
	return r.constraint != nil && r.constraint.m.Done()
}
