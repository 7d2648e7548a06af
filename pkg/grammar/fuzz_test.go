package grammar

import (
	"errors"
	"testing"
)

// fuzzLimits keep each fuzz input cheap.
var fuzzLimits = Limits{SourceBytes: 4 << 10, Elements: 1 << 14, Rules: 1 << 10, CacheBytes: 1 << 20}

// exercise runs a compiled grammar over text byte by byte with masks over
// the test vocabulary, checking that Match agrees with AcceptBytes.
func exercise(t *testing.T, g *Grammar, text []byte) {
	toks, eos := testTokens()
	v := NewVocab(toks, eos)
	m := g.NewMatcher(v)
	mask := make([]uint64, (v.Size()+63)/64)
	ok := true
	for i := range text {
		m.Mask(mask)
		if err := m.AcceptBytes(text[i : i+1]); err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("AcceptBytes: %v, not ErrRejected", err)
			}
			if allowed(mask, int32(text[i])) {
				t.Fatalf("byte %q allowed by the mask but rejected", text[i])
			}
			ok = false
			break
		}
	}
	if got := g.Match(text); got != (ok && m.Accept(eos) == nil) {
		t.Fatalf("Match(%q) = %v, but byte by byte %v", text, got, !got)
	}
}

func FuzzParseGBNF(f *testing.F) {
	for _, c := range gbnfCases {
		for _, s := range append(c.yes, c.no...) {
			f.Add(c.src, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, src string, text []byte) {
		g, err := ParseGBNF(src, fuzzLimits)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrLimit) {
				t.Fatalf("ParseGBNF: %v wraps none of the package's errors", err)
			}
			return
		}
		back, err := ParseGBNF(g.String(), Limits{})
		if err != nil {
			t.Fatalf("String() does not parse back: %v\n%s", err, g)
		}
		if g.Match(text) != back.Match(text) {
			t.Fatalf("Match(%q) differs after the String() round trip\n%s", text, g)
		}
		exercise(t, g, text)
	})
}

func FuzzFromJSONSchema(f *testing.F) {
	for _, c := range keywordCases {
		for _, s := range append(append(c.valid, c.invalid...), c.subset...) {
			f.Add([]byte(c.schema), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, schema, text []byte) {
		g, err := FromJSONSchema(schema, fuzzLimits)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrLimit) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("FromJSONSchema: %v wraps none of the package's errors", err)
			}
			return
		}
		exercise(t, g, text)
	})
}
