package chat

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrParserConfig wraps the errors of ParserConfig.Validate.
var ErrParserConfig = errors.New("chat: parser config")

// ErrMalformedCall marks text that began like a tool call but did not
// parse (Delta.Err wraps it with the reason).
var ErrMalformedCall = errors.New("chat: malformed tool call")

// ErrCallLimit marks a tool call returned as text because it ran past
// MaxCalls or MaxCallBytes (Delta.Err wraps it).
var ErrCallLimit = errors.New("chat: tool call limit")

// Limits on what one reply may hold back as tool calls.
const (
	// DefaultMaxCalls is ParserConfig.MaxCalls when zero.
	DefaultMaxCalls = 128
	// DefaultMaxCallBytes is ParserConfig.MaxCallBytes when zero: a call's
	// markup is held back whole until it parses, so this bounds the memory
	// one reply can pin.
	DefaultMaxCallBytes = 1 << 20
	// maxNameBytes bounds a function name.
	maxNameBytes = 256
	// maxHeldSpace bounds the run of trailing whitespace held back because
	// markup may follow it (whitespace touching markup is markup).
	maxHeldSpace = 256
	// startCheckBytes is how much of a call is checked for a plausible
	// beginning as it streams in, so that prose that merely mentions an
	// opening tag is let go at once instead of held to the end.
	startCheckBytes = 64
)

// ReasoningFormat says where a reply's reasoning goes; the router's
// --reasoning-format flag.
type ReasoningFormat uint8

const (
	// ReasoningDeepSeek splits reasoning (<think>…</think>, gpt-oss's
	// analysis channel) out of the text into KindReasoning deltas, as
	// DeepSeek's API and vLLM do (reasoning_content).
	ReasoningDeepSeek ReasoningFormat = iota
	// ReasoningNone leaves reasoning in the text, markup and all.
	ReasoningNone
)

var reasoningFormats = [...]string{ReasoningDeepSeek: "deepseek", ReasoningNone: "none"}

func (r ReasoningFormat) String() string {
	if int(r) < len(reasoningFormats) {
		return reasoningFormats[r]
	}
	return fmt.Sprintf("ReasoningFormat(%d)", r)
}

// ParseReasoningFormat reads a --reasoning-format value: none or deepseek.
func ParseReasoningFormat(s string) (ReasoningFormat, error) {
	for i, n := range reasoningFormats {
		if s == n {
			return ReasoningFormat(i), nil
		}
	}
	return 0, fmt.Errorf("%w: reasoning format %q (want none or deepseek)", ErrParserConfig, s)
}

// ParserConfig configures a Parser: one per reply.
type ParserConfig struct {
	// Family is the model's output syntax (DetectFamily of its template).
	// The zero value, FamilyPlain, reads text and <think> reasoning only.
	Family Family
	// ToolCalls turns on reading tool calls: the request offered tools and
	// tool_choice is not "none". False (the zero value): call markup is text.
	ToolCalls bool
	// Reasoning says where reasoning goes. The zero value, ReasoningDeepSeek,
	// splits it out.
	Reasoning ReasoningFormat
	// InReasoning says the reply starts inside a reasoning block because
	// the prompt opened one (ThinkingOpen). False (the zero value): the
	// reply must open it itself. Ignored by the families without <think>
	// (FamilyHarmony, FamilyMistral).
	InReasoning bool
	// MaxCalls bounds the tool calls read from one reply; calls past it come
	// back as text. Zero means DefaultMaxCalls.
	MaxCalls int
	// MaxCallBytes bounds the markup of one call (for FamilyHarmony, of one
	// message header or call message) held back until it parses; a longer
	// one comes back as text. Zero means DefaultMaxCallBytes.
	MaxCallBytes int
}

// DefaultParserConfig reads tool calls of family f with reasoning split out
// and the default limits.
func DefaultParserConfig(f Family) ParserConfig {
	return ParserConfig{Family: f, ToolCalls: true, MaxCalls: DefaultMaxCalls, MaxCallBytes: DefaultMaxCallBytes}
}

// Validate reports a config that NewParser refuses.
func (c ParserConfig) Validate() error {
	switch {
	case int(c.Family) >= len(families):
		return fmt.Errorf("%w: unknown family %d", ErrParserConfig, c.Family)
	case int(c.Reasoning) >= len(reasoningFormats):
		return fmt.Errorf("%w: unknown reasoning format %d", ErrParserConfig, c.Reasoning)
	case c.MaxCalls < 0:
		return fmt.Errorf("%w: MaxCalls %d is negative", ErrParserConfig, c.MaxCalls)
	case c.MaxCallBytes < 0:
		return fmt.Errorf("%w: MaxCallBytes %d is negative", ErrParserConfig, c.MaxCallBytes)
	}
	return nil
}

// DeltaKind says what a Delta carries.
type DeltaKind uint8

const (
	// KindText is reply text (OpenAI content). Text is set.
	KindText DeltaKind = iota + 1
	// KindReasoning is reasoning text (reasoning_content). Text is set.
	KindReasoning
	// KindCallStart opens a tool call: Index, ID and Name are set.
	KindCallStart
	// KindCallArgs is a fragment of a call's arguments, a JSON object's
	// text once all fragments of the call are joined: Index and Text are set.
	KindCallArgs
	// KindFinish ends the reply: Calls is the number of tool calls it made
	// (OpenAI's finish_reason is "tool_calls" when it is not zero and
	// generation ended by itself).
	KindFinish
)

var kindNames = [...]string{KindText: "text", KindReasoning: "reasoning", KindCallStart: "call-start", KindCallArgs: "call-args", KindFinish: "finish"}

func (k DeltaKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("DeltaKind(%d)", k)
}

// Delta is one typed piece of a reply, in order.
type Delta struct {
	Kind DeltaKind
	// Text is the text of KindText and KindReasoning, and the arguments
	// fragment of KindCallArgs.
	Text string
	// Index numbers the tool calls of a reply from 0 (KindCallStart,
	// KindCallArgs).
	Index int
	// ID and Name are the call's ID and function name (KindCallStart). The
	// ID is the model's own where its format carries one (Kimi-K2, Mistral),
	// else a fresh random one in the family's shape.
	ID, Name string
	// Calls is the number of tool calls the reply made (KindFinish).
	Calls int
	// Err, on KindText, says why this text, which began like a tool call,
	// is not one; it wraps ErrMalformedCall or ErrCallLimit.
	Err error
}

// Parser reads a model's reply as it streams in, text delta by text
// delta, and returns typed deltas: text, reasoning and tool calls in the
// family's syntax. It holds back only what may still become markup, as a
// stop-string matcher does. A tool call is held until it parses whole, so
// that one that does not parse comes back as text, never dropped; its
// arguments then go out as one fragment. Not safe for concurrent use.
//
// A text or reasoning delta is one span of the reply as written; what
// lies between spans is markup (think tags, harmony headers, calls, and
// the whitespace touching them), and nothing else is left out.
//
// Its input is the detokenized reply including the text of special tokens
// (<|channel|>, <｜tool▁calls▁begin｜>, …), which a decoder that drops
// control tokens would lose.
type Parser struct {
	cfg      ParserConfig
	fam      *family
	r        reader
	buf      []byte // input not yet emitted or dropped
	out      []Delta
	joinable bool // nothing was dropped since the last delta
	calls    int
	finished bool
}

// A reader is a family's way of consuming Parser.buf.
type reader interface {
	// read consumes p.buf as far as it can be decided, emitting deltas
	// through p; end says no more input comes, so everything must go.
	read(p *Parser, end bool)
}

// NewParser starts reading one reply.
func NewParser(cfg ParserConfig) (*Parser, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxCalls == 0 {
		cfg.MaxCalls = DefaultMaxCalls
	}
	if cfg.MaxCallBytes == 0 {
		cfg.MaxCallBytes = DefaultMaxCallBytes
	}
	p := &Parser{cfg: cfg, fam: &families[cfg.Family]}
	p.r = p.fam.reader(p)
	return p, nil
}

// Push adds a text delta of the reply and returns the deltas it completes.
func (p *Parser) Push(text string) []Delta {
	if p.finished {
		return nil
	}
	p.buf = append(p.buf, text...)
	p.r.read(p, false)
	return p.take()
}

// Finish ends the reply: it returns what was held back (a call cut off by
// the end of generation comes back as text) and a KindFinish delta.
// Further calls return nothing.
func (p *Parser) Finish() []Delta {
	if p.finished {
		return nil
	}
	p.r.read(p, true)
	p.finished = true
	p.out = append(p.out, Delta{Kind: KindFinish, Calls: p.calls})
	return p.take()
}

func (p *Parser) take() []Delta {
	out := p.out
	p.out, p.joinable = nil, false
	return out
}

// splitReasoning reports whether reasoning is split out of the text.
func (p *Parser) splitReasoning() bool { return p.cfg.Reasoning == ReasoningDeepSeek }

// emit emits the first n bytes of the buffer as text or reasoning, joined
// to the previous delta when it is of the same kind and nothing was
// dropped between them: a delta's text is one span of the reply.
func (p *Parser) emit(k DeltaKind, n int) {
	if n == 0 {
		return
	}
	if last := len(p.out) - 1; p.joinable && last >= 0 && p.out[last].Kind == k && p.out[last].Err == nil {
		p.out[last].Text += string(p.buf[:n])
	} else {
		p.out = append(p.out, Delta{Kind: k, Text: string(p.buf[:n])})
	}
	p.buf, p.joinable = p.buf[n:], true
}

// emitUncall emits the first n bytes of the buffer, markup that is not a
// call, as text, saying why.
func (p *Parser) emitUncall(n int, err error) {
	if n > 0 {
		p.out = append(p.out, Delta{Kind: KindText, Text: string(p.buf[:n]), Err: err})
		p.buf, p.joinable = p.buf[n:], false
	}
}

// drop drops the first n bytes of the buffer, markup.
func (p *Parser) drop(n int) {
	if n > 0 {
		p.buf, p.joinable = p.buf[n:], false
	}
}

// emitCalls emits parsed calls, or returns false when they would run past
// MaxCalls.
func (p *Parser) emitCalls(calls []rawCall) bool {
	if p.calls+len(calls) > p.cfg.MaxCalls {
		return false
	}
	for _, c := range calls {
		id := c.id
		if id == "" {
			id = p.fam.newID()
		}
		p.out = append(p.out,
			Delta{Kind: KindCallStart, Index: p.calls, ID: id, Name: c.name},
			Delta{Kind: KindCallArgs, Index: p.calls, Text: c.args})
		p.calls++
	}
	return true
}

// rawCall is a call as a family's reader parsed it: args is a JSON
// object's text; id is empty unless the model wrote one.
type rawCall struct{ id, name, args string }

// errMore is returned by call readers for text that may still become a
// call once more of it arrives.
var errMore = errors.New("chat: call incomplete")

// malformed wraps ErrMalformedCall with a family and a reason.
func malformed(f, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformedCall, f, fmt.Sprintf(format, args...))
}

const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomID returns prefix and n random letters and digits.
func randomID(prefix string, n int) string {
	var sb strings.Builder
	sb.WriteString(prefix)
	var b [64]byte
	for sb.Len() < len(prefix)+n {
		rand.Read(b[:]) // never fails (crypto/rand)
		for _, c := range b {
			// 248 = 4*62: keep the draw uniform.
			if c < 248 && sb.Len() < len(prefix)+n {
				sb.WriteByte(idChars[c%62])
			}
		}
	}
	return sb.String()
}

// validName reports whether s can be a function name: printable, without
// spaces, quotes or angle brackets, at most maxNameBytes.
func validName(s string) bool {
	if s == "" || len(s) > maxNameBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == '"' || r == '\'' || r == '\u00a0' || r == '\ufffd' {
			return false
		}
	}
	return true
}

// isSpace reports JSON whitespace, the whitespace templates put around markup.
func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// trailingSpace returns the length of b's run of trailing whitespace.
func trailingSpace(b []byte) int {
	n := 0
	for n < len(b) && isSpace(b[len(b)-1-n]) {
		n++
	}
	return n
}

// leadingSpace returns the length of b's run of leading whitespace.
func leadingSpace(b []byte) int {
	n := 0
	for n < len(b) && isSpace(b[n]) {
		n++
	}
	return n
}

// partialSuffix returns the length of the longest suffix of b that is a
// proper prefix of one of markers: what may still become markup.
func partialSuffix(b []byte, markers [][]byte) int {
	best := 0
	for _, m := range markers {
		for k := min(len(m)-1, len(b)); k > best; k-- {
			if bytes.HasSuffix(b, m[:k]) {
				best = k
				break
			}
		}
	}
	return best
}

// isPrefix reports whether b is a proper prefix of m: it may become m.
func isPrefix(b, m []byte) bool { return len(b) < len(m) && bytes.HasPrefix(m, b) }

// mayBegin reports whether b begins with m or may still.
func mayBegin(b []byte, m string) bool {
	return bytes.HasPrefix(b, []byte(m)) || isPrefix(b, []byte(m))
}

// firstMarker returns where the earliest of markers begins in b, or -1.
func firstMarker(b []byte, markers [][]byte) int {
	at := -1
	for _, m := range markers {
		if j := bytes.Index(b, m); j >= 0 && (at < 0 || j < at) {
			at = j
		}
	}
	return at
}

// incompleteRune returns the length of an unfinished UTF-8 sequence at the
// end of b, held back so that deltas split no character.
func incompleteRune(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c&0xC0 == 0x80 {
			continue // continuation byte
		}
		if c >= 0xC0 && !utf8.FullRune(b[len(b)-k:]) {
			return k
		}
		return 0
	}
	return 0
}

// emittable returns how much of b can go out now: all but a tail that may
// begin one of markers, then (when holdSpace) trailing whitespace up to
// maxHeldSpace, then an unfinished character.
func emittable(b []byte, markers [][]byte, holdSpace bool) int {
	n := len(b) - partialSuffix(b, markers)
	if holdSpace {
		n -= min(trailingSpace(b[:n]), maxHeldSpace)
	}
	return n - incompleteRune(b[:n])
}

func toBytes(ms ...string) [][]byte {
	out := make([][]byte, 0, len(ms))
	for _, m := range ms {
		if m != "" {
			out = append(out, []byte(m))
		}
	}
	return out
}
