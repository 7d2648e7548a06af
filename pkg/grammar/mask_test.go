package grammar

import (
	"errors"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// testTokens is a small byte-level vocabulary: every byte, JSON-ish
// fragments, pieces that split UTF-8 characters, a control token (no
// bytes) and the end-of-sequence token last.
func testTokens() ([][]byte, int32) {
	var toks [][]byte
	for b := range 256 {
		toks = append(toks, []byte{byte(b)})
	}
	for _, s := range []string{
		`{"`, `"}`, `":`, `", "`, `":"`, `","`, `": "`, `true`, `false`, `null`, `name`, `age`, `tags`,
		` "`, `,"`, `[]`, `{}`, `[{"`, `}]`, `"]`, `12`, `345`, `3.`, `-1`, `e+`, `0.`, `\"`, `\\`, `\u00`,
		`\n`, "\n  ", "  ", `é`, `日本`, "\xe6\x97", "\xa5", "2024-", "-02-", "29", "T0", ":00Z", "@ex",
		"ample", ".com", "-e89b-", "abc", "city", "days", `"city":"`, `,"days":`, "Paris", "ab", "cd", "ae", "abe",
	} {
		toks = append(toks, []byte(s))
	}
	toks = append(toks, nil, nil) // a control token; EOS
	return toks, int32(len(toks) - 1)
}

func allowed(bitset []uint64, id int32) bool { return bitset[id/64]&(1<<(id%64)) != 0 }

func TestMaskFollowsGrammar(t *testing.T) {
	toks, eos := testTokens()
	v := NewVocab(toks, eos)
	g, err := ParseGBNF(`root ::= "ab" [0-9]* ("cd" | "é")`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	m := g.NewMatcher(v)
	mask := make([]uint64, (v.Size()+63)/64)
	ids := func() []string {
		m.Mask(mask)
		var out []string
		for id := range int32(v.Size()) {
			if allowed(mask, id) {
				if id == eos {
					out = append(out, "EOS")
				} else {
					out = append(out, string(toks[id]))
				}
			}
		}
		slices.Sort(out)
		return out
	}
	step := func(tok string, want []string) {
		t.Helper()
		if got := ids(); !slices.Equal(got, want) {
			t.Fatalf("before %q: allowed %q, want %q", tok, got, want)
		}
		id := int32(slices.IndexFunc(toks, func(b []byte) bool { return string(b) == tok }))
		if tok == "EOS" {
			id = eos
		}
		if err := m.Accept(id); err != nil {
			t.Fatalf("Accept(%q): %v", tok, err)
		}
	}
	digits := []string{"0", "1", "12", "2", "29", "3", "345", "4", "5", "6", "7", "8", "9"}
	afterAB := append(slices.Clone(digits), "c", "cd", "\xc3", "é")
	slices.Sort(afterAB)
	step("ab", []string{"a", "ab", "abc"})
	step("12", afterAB)
	step("\xc3", afterAB)
	step("\xa9", []string{"\xa9"}) // the second byte of é
	if !m.Done() {
		// the grammar ended but EOS is not yet accepted: Done all the same
		t.Error("Done() = false at the end of the grammar")
	}
	step("EOS", []string{"EOS"})
	if got := ids(); got != nil {
		t.Errorf("after EOS, allowed %q", got)
	}
	if !m.Done() {
		t.Error("Done() = false after EOS")
	}
	if err := m.Accept(0); !errors.Is(err, ErrRejected) {
		t.Errorf("Accept after EOS: %v, want ErrRejected", err)
	}
}

func TestAcceptRejects(t *testing.T) {
	toks, eos := testTokens()
	v := NewVocab(toks, eos)
	g, err := ParseGBNF(`root ::= "ab"+`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	m := g.NewMatcher(v)
	if err := m.Accept(eos); !errors.Is(err, ErrRejected) {
		t.Errorf("EOS at the start: %v, want ErrRejected", err)
	}
	if err := m.Accept(eos - 1); !errors.Is(err, ErrRejected) {
		t.Errorf("control token: %v, want ErrRejected", err)
	}
	if err := m.Accept(int32(len(toks))); !errors.Is(err, ErrRejected) {
		t.Errorf("token out of range: %v, want ErrRejected", err)
	}
	if err := m.Accept('a'); err != nil {
		t.Fatal(err)
	}
	if err := m.AcceptBytes([]byte("bax")); !errors.Is(err, ErrRejected) {
		t.Errorf("AcceptBytes(bax): %v, want ErrRejected", err)
	}
	// A refused token leaves the matcher where it was.
	if err := m.AcceptBytes([]byte("bab")); err != nil {
		t.Errorf("after a refused token, AcceptBytes(bab): %v", err)
	}
	c := m.Clone()
	if err := c.AcceptBytes([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	m.Reset()
	if err := m.AcceptBytes([]byte("b")); !errors.Is(err, ErrRejected) {
		t.Errorf("after Reset, b: %v, want ErrRejected", err)
	}
	if err := c.Accept(eos); err != nil || !c.Done() {
		t.Errorf("clone at abab…: EOS %v, Done %v", err, c.Done())
	}
}

// checkMask compares every bit of m's mask with whether a clone accepts
// that token.
func checkMask(t *testing.T, m *Matcher, v *Vocab, mask []uint64) {
	t.Helper()
	for id := range int32(v.Size()) {
		ok := m.Clone().Accept(id) == nil
		if ok != allowed(mask, id) {
			t.Fatalf("token %d %q: mask %v, Accept %v", id, v.tokens[id], allowed(mask, id), ok)
		}
	}
}

// walk generates by random allowed tokens until EOS, at most limit tokens;
// it returns the text and whether EOS came. It leans towards tokens that
// close something, so that strings and arrays end.
func walk(t *testing.T, g *Grammar, v *Vocab, rng *rand.Rand, limit int, check bool) (string, bool) {
	t.Helper()
	m := g.NewMatcher(v)
	mask := make([]uint64, (v.Size()+63)/64)
	var text strings.Builder
	var ids, closers []int32
	for range limit {
		m.Mask(mask)
		if check {
			checkMask(t, m, v, mask)
		}
		ids, closers = ids[:0], closers[:0]
		for w, word := range mask {
			for word != 0 {
				id := int32(w*64 + bits.TrailingZeros64(word))
				word &= word - 1
				ids = append(ids, id)
				if id == v.eos || len(v.tokens[id]) == 1 && strings.IndexByte(`"]},`, v.tokens[id][0]) >= 0 {
					closers = append(closers, id)
				}
			}
		}
		if len(ids) == 0 {
			t.Fatalf("no token allowed after %q", text.String())
		}
		pick := ids[rng.IntN(len(ids))]
		if len(closers) > 0 && rng.IntN(3) == 0 {
			pick = closers[rng.IntN(len(closers))]
		}
		if err := m.Accept(pick); err != nil {
			t.Fatalf("after %q, allowed token %d %q: %v", text.String(), pick, v.tokens[pick], err)
		}
		if pick == v.eos {
			return text.String(), true
		}
		text.Write(v.tokens[pick])
	}
	return text.String(), false
}

// TestGeneratedValidates is the property: whatever the mask lets a model
// write, ended when it allows EOS, validates against the schema (by an
// independent validator). The first walks of each schema also check every
// mask bit against Accept.
func TestGeneratedValidates(t *testing.T) {
	toks, eos := testTokens()
	v := NewVocab(toks, eos)
	schemas := []string{personSchema, weatherSchema}
	for _, c := range keywordCases {
		schemas = append(schemas, c.schema)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	walks, done := 0, 0
	for _, schema := range schemas {
		g, err := FromJSONSchema([]byte(schema), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		val := validator(t, schema)
		n := 0
		for i := range 40 {
			text, ended := walk(t, g, v, rng, 400, i < 3)
			walks++
			if !ended {
				continue
			}
			n++
			if err := validates(val, text); err != nil {
				t.Errorf("schema %s: generated %s, which does not validate: %v", schema, text, err)
			}
			if !g.Match([]byte(text)) {
				t.Errorf("schema %s: generated %s, which the grammar does not match", schema, text)
			}
		}
		if n == 0 {
			t.Errorf("schema %s: no walk of 40 reached EOS", schema)
		}
		done += n
	}
	t.Logf("%d of %d random walks over %d schemas reached EOS; every one validated", done, walks, len(schemas))
}

const (
	personSchema  = `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},"required":["name","age"],"additionalProperties":false}`
	weatherSchema = `{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer","minimum":1,"maximum":7}},"required":["city"],"additionalProperties":false}`
)

// TestSmallCache runs with a cache budget so small that it starts afresh
// all the time: the masks must not change.
func TestSmallCache(t *testing.T) {
	toks, eos := testTokens()
	v := NewVocab(toks, eos)
	big, err := FromJSONSchema([]byte(personSchema), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	small, err := FromJSONSchema([]byte(personSchema), Limits{CacheBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	text := []byte(`{"name": "Ada \u00e9", "age": 36, "tags": ["x"]}`)
	mb, ms := big.NewMatcher(v), small.NewMatcher(v)
	want, got := make([]uint64, (v.Size()+63)/64), make([]uint64, (v.Size()+63)/64)
	for i := range text {
		mb.Mask(want)
		ms.Mask(got)
		if !slices.Equal(got, want) {
			t.Fatalf("at %q: masks differ under a 1000-byte cache", text[:i])
		}
		if err := mb.AcceptBytes(text[i : i+1]); err != nil {
			t.Fatal(err)
		}
		if err := ms.AcceptBytes(text[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStackDepthLimit(t *testing.T) {
	g, err := FromJSONSchema([]byte(`{"type":"array"}`), Limits{StackDepth: 40})
	if err != nil {
		t.Fatal(err)
	}
	shallow := strings.Repeat("[", 5) + strings.Repeat("]", 5)
	deep := strings.Repeat("[", 50) + strings.Repeat("]", 50)
	if !g.Match([]byte(shallow)) {
		t.Errorf("5 nested arrays refused under StackDepth 40")
	}
	if g.Match([]byte(deep)) {
		t.Errorf("50 nested arrays accepted under StackDepth 40")
	}
}

func TestParsesLimit(t *testing.T) {
	// After n a's, each number of c's still owed (0…n) is a parse.
	src := "root ::= e \"b\" \"c\"*\ne ::= \"a\" e \"c\" | \"a\" e | \"\""
	g, err := ParseGBNF(src, Limits{Parses: 8})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Match([]byte("ab")) {
		t.Error("ab refused")
	}
	unlimited, err := ParseGBNF(src, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	long := []byte(strings.Repeat("a", 10) + "b")
	if !unlimited.Match(long) {
		t.Error("a…ab refused with the default limit")
	}
	if g.Match(long) {
		t.Error("a…ab accepted with at most 8 parses")
	}
}

// TestConcurrentMatchers runs matchers of one grammar on several
// goroutines (they share its caches); run with -race. Each must see the
// masks a grammar of its own gives.
func TestConcurrentMatchers(t *testing.T) {
	toks, eos := testTokens()
	v := NewVocab(toks, eos)
	shared, err := FromJSONSchema([]byte(personSchema), Limits{CacheBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{`{"name":"a","age":1}`, `{"name": "日本", "age": -20, "tags": ["x", "y"]}`, `{"name":"\"","age":0,"tags":[]}`}
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			own, err := FromJSONSchema([]byte(personSchema), Limits{})
			if err != nil {
				errs <- err
				return
			}
			text := []byte(texts[i%len(texts)])
			ms, mo := shared.NewMatcher(v), own.NewMatcher(v)
			got, want := make([]uint64, (v.Size()+63)/64), make([]uint64, (v.Size()+63)/64)
			for j := range text {
				ms.Mask(got)
				mo.Mask(want)
				if !slices.Equal(got, want) {
					errs <- errors.New("masks differ at " + string(text[:j]))
					return
				}
				if err := ms.AcceptBytes(text[j : j+1]); err != nil {
					errs <- err
					return
				}
				if err := mo.AcceptBytes(text[j : j+1]); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
