package chat

import (
	"regexp"
	"strings"
	"testing"
)

// markupGaps are what a family's parser may drop from a reply that makes
// no call: <think> tags and the space touching them, or harmony's message
// headers and ends.
var markupGaps = map[bool]string{
	false: `(?:\s|<think>|</think>)*`,
	true:  `(?:<\|(?:start|channel|message|constrain|end|return|call)\|>|[A-Za-z0-9_.=:/ \t\r\n-])*`,
}

// FuzzParser feeds replies to every family's parser, whole and in pieces.
// It must never panic; the deltas must be well formed (checkStream) and
// the same however the reply is cut; and a reply that makes no call must
// lose nothing but markup: its text and reasoning, in order, are the
// reply with only <think> tags, harmony headers and space around them
// left out (with reasoning left in the text, outside harmony, all of it).
func FuzzParser(f *testing.F) {
	fx := loadFixtures(f)
	for _, rel := range released {
		for _, c := range releasedCases(f, fx, rel.file, rel.family, rel.eot, rel.keepEOT) {
			f.Add(c.out, uint8(rel.family), uint8(0))
			f.Add(c.out, uint8(rel.family), uint8(1<<3|2))
		}
	}
	f.Add("<think>a</think>b <tool_call>{\"name\": \"f\"}</tool_call>", uint8(FamilyHermes), uint8(5<<3))
	f.Add("<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>final<|message|>y", uint8(FamilyHarmony), uint8(2<<3))
	f.Fuzz(func(t *testing.T, in string, fam, mode uint8) {
		cfg := ParserConfig{
			Family:       Family(int(fam) % len(families)),
			ToolCalls:    mode&1 == 0,
			Reasoning:    ReasoningFormat(mode >> 1 & 1),
			InReasoning:  mode&4 != 0,
			MaxCallBytes: 1 << 12,
		}
		whole, wholeDeltas := run(t, cfg, []string{in})
		var pieces []string
		for s, k := in, int(mode>>3)+1; len(s) > 0; {
			n := min(k, len(s))
			pieces, s = append(pieces, s[:n]), s[n:]
		}
		cut, _ := run(t, cfg, pieces)
		if whole.Text != cut.Text || whole.Reasoning != cut.Reasoning || len(whole.Errs) != len(cut.Errs) || len(whole.Calls) != len(cut.Calls) {
			t.Fatalf("%v: whole gave %+v, in pieces of %d %+v", cfg, whole, mode>>3+1, cut)
		}
		for i, c := range whole.Calls {
			if d := cut.Calls[i]; c.Name != d.Name || c.Args != d.Args || cfg.Family == FamilyKimiK2 && c.ID != d.ID {
				t.Fatalf("call %d: whole gave %+v, in pieces %+v", i, c, d)
			}
		}
		if len(whole.Calls) > 0 || len(in) > 1<<12 {
			return
		}
		harmony := cfg.Family == FamilyHarmony
		if cfg.Reasoning == ReasoningNone && !harmony {
			if whole.Text != in {
				t.Fatalf("%v: text %q, want all of %q", cfg, whole.Text, in)
			}
			return
		}
		var re strings.Builder
		re.WriteString(`^` + markupGaps[harmony])
		for _, d := range wholeDeltas {
			if d.Kind == KindText || d.Kind == KindReasoning {
				re.WriteString(`(?:` + regexp.QuoteMeta(latin1(d.Text)) + `)` + markupGaps[harmony])
			}
		}
		if !regexp.MustCompile(re.String() + `$`).MatchString(latin1(in)) {
			t.Fatalf("%v: deltas %+v do not add up to %q with only markup between", cfg, wholeDeltas, in)
		}
	})
}

// latin1 maps each byte to a character, so that regular expressions (which
// want UTF-8) match bytes: the markup is ASCII.
func latin1(s string) string {
	r := make([]rune, len(s))
	for i := range len(s) {
		r[i] = rune(s[i])
	}
	return string(r)
}
