package grammar

import (
	"errors"
	"testing"
)

// TestCompose: Seq and Alt keep each part's language, whatever rule names
// the parts share, and leave the parts as they were.
func TestCompose(t *testing.T) {
	mustGBNF := func(src string) *Grammar {
		t.Helper()
		g, err := ParseGBNF(src, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	// Same rule names, different meanings.
	a := mustGBNF("root ::= x+\nx ::= \"a\"")
	b := mustGBNF("root ::= x\nx ::= \"b\" | \"c\"")
	schema, err := FromJSONSchema([]byte(`{"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["n"], "additionalProperties": false}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	seqAB, err := Seq(Limits{}, a, b)
	if err != nil {
		t.Fatal(err)
	}
	altAB, err := Alt(Limits{}, a, b)
	if err != nil {
		t.Fatal(err)
	}
	call, err := Seq(Limits{}, Literal(`{"name": "f", "arguments": `), schema, Literal("}"))
	if err != nil {
		t.Fatal(err)
	}
	twoCalls, err := Alt(Limits{}, call, Literal("none"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		g       *Grammar
		yes, no []string
	}{
		{"seq", seqAB, []string{"ab", "aaac"}, []string{"a", "b", "aa", "abb", "ba", ""}},
		{"alt", altAB, []string{"a", "aaa", "b", "c"}, []string{"ab", "bc", ""}},
		{"schema between literals", call, []string{`{"name": "f", "arguments": {"n":7}}`, `{"name": "f", "arguments": {"n": 1}}`},
			[]string{`{"name": "f", "arguments": {"n":8}}`, `{"name": "f", "arguments": {}}`, `{"name": "f", "arguments": {"n":1}`, `{"n":1}`}},
		{"alt of a composition", twoCalls, []string{"none", `{"name": "f", "arguments": {"n":3}}`}, []string{"nonenone", `{"name": "f", "arguments": {"n":0}}`}},
		{"literal bytes", Literal("é\xff"), []string{"é\xff"}, []string{"é", "é\xfe"}},
		// The parts are unchanged.
		{"a after", a, []string{"a", "aa"}, []string{"b"}},
		{"b after", b, []string{"b", "c"}, []string{"a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, s := range c.yes {
				if !c.g.Match([]byte(s)) {
					t.Errorf("Match(%q) = false, want true", s)
				}
			}
			for _, s := range c.no {
				if c.g.Match([]byte(s)) {
					t.Errorf("Match(%q) = true, want false", s)
				}
			}
			if c.name == "literal bytes" {
				return // \xff has no GBNF spelling
			}
			back, err := ParseGBNF(c.g.String(), Limits{})
			if err != nil {
				t.Fatalf("String() does not parse back: %v\n%s", err, c.g)
			}
			for _, s := range c.yes {
				if !back.Match([]byte(s)) {
					t.Errorf("String() round trip: Match(%q) = false, want true", s)
				}
			}
		})
	}
	if _, err := Seq(Limits{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Seq of nothing: got %v, want ErrInvalid", err)
	}
	if _, err := Alt(Limits{Rules: 3}, a, b); !errors.Is(err, ErrLimit) {
		t.Errorf("Alt past Limits.Rules: got %v, want ErrLimit", err)
	}
}
