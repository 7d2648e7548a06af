package grammar

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// gbnfCases are grammars with strings they must accept and reject, worked
// out by hand from GBNF's rules (llama.cpp grammars/README.md).
var gbnfCases = []struct {
	name, src string
	yes, no   []string
}{
	{"literal", `root ::= "abc"`, []string{"abc"}, []string{"", "ab", "abcd", "abd"}},
	{"sequence and alternatives", `root ::= ("a" | "bc") "d"`, []string{"ad", "bcd"}, []string{"d", "abcd", "bd"}},
	{"alternatives of a rule", "root ::= x x\nx ::= \"0\" | \"1\"", []string{"00", "01", "10", "11"}, []string{"0", "2", "012"}},
	{"star", `root ::= "a" "b"*`, []string{"a", "ab", "abbbb"}, []string{"", "b", "aba"}},
	{"plus", `root ::= [0-9]+`, []string{"0", "0123456789"}, []string{"", "a", "1a"}},
	{"optional", `root ::= "a"? "b"`, []string{"b", "ab"}, []string{"aab", "a"}},
	{"exact count", `root ::= [ab]{3}`, []string{"aaa", "bab"}, []string{"aa", "aaaa"}},
	{"at least", `root ::= "x"{2,}`, []string{"xx", "xxxxxxx"}, []string{"x", ""}},
	{"between", `root ::= ("ab"){1,3}`, []string{"ab", "abab", "ababab"}, []string{"", "a", "abababab", "aba"}},
	{"at most", `root ::= "z"{0,2} "."`, []string{".", "z.", "zz."}, []string{"zzz.", "z"}},
	{"empty alternative", "root ::= \"a\" | \n  \"\"", []string{"", "a"}, []string{"aa"}},
	{"negated class", `root ::= [^a-z\n]+`, []string{"ABC", "1 2", "é", "日本"}, []string{"abc", "A\n", "", "\xff"}},
	{"unicode range", `root ::= [ぁ-ゟ]+`, []string{"ひらがな"}, []string{"カタカナ", "a", "\xe3\x81"}},
	{"any character", `root ::= "<" . ">"`, []string{"<a>", "<\n>", "<😀>", "<é>"}, []string{"<>", "<ab>", "<\xc3>", "<\xed\xa0\x80>"}},
	{"escapes", `root ::= "\x41\u00e9\U0001F600\t\"\\" [\]\[]`, []string{"Aé😀\t\"\\]", "Aé😀\t\"\\["}, []string{"A\\xe9", "Aé😀\t\"\\"}},
	{"class with dash and caret", `root ::= [-^a]+`, []string{"-^a", "^"}, []string{"b"}},
	{"comments and newlines", "# a list\nroot ::= (\n  item # one\n  \"\\n\"\n)+\nitem ::= \"- \" [a-z]+\n", []string{"- a\n- bc\n"}, []string{"- a", "-a\n"}},
	{"recursion", "root ::= \"(\" root \")\" | \"x\"", []string{"x", "(x)", "((x))"}, []string{"()", "(x", "x)"}},
	{"right recursion loops", "root ::= [a] root | \"\"", []string{"", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, []string{"ab"}},
	{"ambiguous", `root ::= ("a" | "a" "a")* "b"`, []string{"b", "ab", "aaab"}, []string{"a", "aba"}},
	{"chess-like", "root ::= \"1. \" move \" \" move \"\\n\" ([1-9] [0-9]? \". \" move \" \" move \"\\n\")+\nmove ::= (pawn | castle) [+#]?\npawn ::= [a-h] [1-8]\ncastle ::= \"O-O\" \"-O\"?",
		[]string{"1. e4 e5\n2. d4 O-O-O#\n", "1. O-O e5\n2. d4 c5+\n10. a1 b2\n"}, []string{"1. e4 e5\n", "1. e9 e5\n2. d4 d5\n"}},
}

func TestGBNF(t *testing.T) {
	for _, c := range gbnfCases {
		t.Run(c.name, func(t *testing.T) {
			g, err := ParseGBNF(c.src, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			// The grammar String writes must read back to the same language.
			back, err := ParseGBNF(g.String(), Limits{})
			if err != nil {
				t.Fatalf("String() does not parse back: %v\n%s", err, g)
			}
			for _, s := range c.yes {
				if !g.Match([]byte(s)) {
					t.Errorf("Match(%q) = false, want true", s)
				}
				if !back.Match([]byte(s)) {
					t.Errorf("String() round trip: Match(%q) = false, want true\n%s", s, g)
				}
			}
			for _, s := range c.no {
				if g.Match([]byte(s)) {
					t.Errorf("Match(%q) = true, want false", s)
				}
				if back.Match([]byte(s)) {
					t.Errorf("String() round trip: Match(%q) = true, want false\n%s", s, g)
				}
			}
		})
	}
}

func TestGBNFErrors(t *testing.T) {
	cases := []struct {
		name, src string
		want      error
		msg       string
	}{
		{"no root", `start ::= "a"`, ErrInvalid, "root"},
		{"undefined rule", `root ::= x`, ErrInvalid, `"x"`},
		{"duplicate rule", "root ::= \"a\"\nroot ::= \"b\"", ErrInvalid, "twice"},
		{"left recursion", `root ::= root "a" | "b"`, ErrInvalid, "left-recursive"},
		{"left recursion through an empty rule", "root ::= e root \"a\" | \"b\"\ne ::= \"\"", ErrInvalid, "left-recursive"},
		{"repeating something empty", `root ::= ("a"?)*`, ErrInvalid, "left-recursive"},
		{"missing ::=", `root = "a"`, ErrSyntax, "::="},
		{"unterminated literal", `root ::= "a`, ErrSyntax, "unterminated"},
		{"unterminated class", `root ::= [a`, ErrSyntax, "unterminated"},
		{"unbalanced", `root ::= ("a"`, ErrSyntax, ")"},
		{"backwards range", `root ::= [z-a]`, ErrSyntax, "backwards"},
		{"backwards repetition", `root ::= "a"{3,1}`, ErrSyntax, "backwards"},
		{"bad escape", `root ::= "\q"`, ErrSyntax, "escape"},
		{"token reference", `root ::= <think>`, ErrSyntax, "token"},
		{"empty class", `root ::= [^\x00-\U0010FFFF]`, ErrInvalid, "empty"},
		{"two rules on a line", `root ::= "a" x ::= "b"`, ErrSyntax, "newline"},
		{"not UTF-8", "root ::= \"\xff\"", ErrSyntax, "UTF-8"},
		{"huge repetition", `root ::= "a"{2000000}`, ErrSyntax, "repetition count"},
		{"too many elements", `root ::= "a"{600000} "b"{600000}`, ErrLimit, "elements"},
		{"nesting", "root ::= " + strings.Repeat("(", 100) + `"a"` + strings.Repeat(")", 100), ErrLimit, "nested"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseGBNF(c.src, Limits{})
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("ParseGBNF(%q) = %v, want %v mentioning %q", c.src, err, c.want, c.msg)
			}
		})
	}
	if _, err := ParseGBNF(`root ::= "aaaa"`, Limits{SourceBytes: 8}); !errors.Is(err, ErrLimit) {
		t.Errorf("16-byte grammar under an 8-byte limit: %v, want ErrLimit", err)
	}
}

// chain is `root ::= a0 "z"` over n nested rules `a_i ::= a_i+1 a_i+1`
// ending in `"x" | ""`: up to 2^n x's, and as many stacks.
func chain(n int) string {
	var sb strings.Builder
	sb.WriteString("root ::= a0 \"z\"\n")
	for i := range n {
		fmt.Fprintf(&sb, "a%d ::= a%d a%d\n", i, i+1, i+1)
	}
	fmt.Fprintf(&sb, "a%d ::= \"x\" | \"\"\n", n)
	return sb.String()
}

// TestNullableChains: with 3 levels the grammar matches what it should;
// with 40, its 2^40 stacks make the matcher give up, refusing, in bounded
// time rather than follow them all.
func TestNullableChains(t *testing.T) {
	g, err := ParseGBNF(chain(3), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"z", "xz", "xxxxxxxxz"} {
		if !g.Match([]byte(s)) {
			t.Errorf("three levels: %q refused", s)
		}
	}
	if g.Match([]byte("xxxxxxxxxz")) {
		t.Error("three levels: 9 x's accepted, at most 8")
	}
	if g, err = ParseGBNF(chain(40), Limits{}); err != nil {
		t.Fatal(err)
	}
	if g.Match([]byte("xz")) {
		t.Error("forty levels: xz accepted past the Parses limit")
	}
}
