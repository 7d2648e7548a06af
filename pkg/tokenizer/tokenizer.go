// Package tokenizer turns text into token IDs and back, built from a GGUF
// file's tokenizer.ggml.* metadata, as llama.cpp does it: byte-level BPE
// ("gpt2", with the pre-tokenizer named by tokenizer.ggml.pre) and
// SentencePiece-style BPE with scores ("llama"), special tokens matched
// whole, and decoding that is safe for streaming.
//
// A byte-level vocabulary whose tokenizer.ggml.pre is missing or not one
// this package implements is refused (ErrUnknownPre) rather than split
// with another pre-tokenizer's rules. It is not a tokenizer trainer, and
// it has no WordPiece, Unigram or RWKV vocabularies.
package tokenizer

import (
	"container/heap"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// ErrTokenizer is wrapped by every error of this package.
var ErrTokenizer = errors.New("tokenizer")

// ErrUnknownPre is wrapped by the error a byte-level vocabulary gets when
// its tokenizer.ggml.pre names a pre-tokenizer this package does not
// implement: tokenizing it with another one would be silently wrong.
var ErrUnknownPre = fmt.Errorf("%w: unknown pre-tokenizer", ErrTokenizer)

// Token types of tokenizer.ggml.token_type.
const (
	TypeNormal      = 1
	TypeUnknown     = 2
	TypeControl     = 3
	TypeUserDefined = 4
	TypeUnused      = 5
	TypeByte        = 6
)

// Tokenizer encodes and decodes text for one vocabulary. It is safe for
// concurrent use.
type Tokenizer struct {
	Model  string // "gpt2" or "llama"
	Pre    string // tokenizer.ggml.pre
	tokens []string
	types  []int32
	scores []float32
	ids    map[string]int32
	ranks  map[[2]string]int // gpt2 merges
	pre    preTokenizer
	// ignoreMerges emits a pre-tokenized word that is itself a token
	// directly (Llama 3's rule).
	ignoreMerges bool
	// specials holds the control, user-defined and unknown tokens by their
	// first byte, longest first.
	specials  [256][]string
	byteToken [256]int32
	pieces    [][]byte // decoded bytes of each token

	BOS, EOS, UNK, PAD int32 // -1 when absent
	AddBOS, AddEOS     bool
	addSpacePrefix     bool
}

// Limits on vocabularies read from files.
const (
	maxVocab = 1 << 22
	maxMerge = 1 << 22
)

// FromGGUF builds the tokenizer described by a file's metadata.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	str := func(k string) string { v, _ := f.Get(k); s, _ := v.V.(string); return s }
	t := &Tokenizer{Model: str("tokenizer.ggml.model"), Pre: str("tokenizer.ggml.pre"), BOS: -1, EOS: -1, UNK: -1, PAD: -1}
	v, ok := f.Get("tokenizer.ggml.tokens")
	toks, isStrs := v.V.([]string)
	if !ok || !isStrs || len(toks) == 0 || len(toks) > maxVocab {
		return nil, fmt.Errorf("%w: tokenizer.ggml.tokens is missing or not a list of strings", ErrTokenizer)
	}
	t.tokens = toks
	t.types = make([]int32, len(toks))
	for i := range t.types {
		t.types[i] = TypeNormal
	}
	if v, ok := f.Get("tokenizer.ggml.token_type"); ok {
		tt, isI := v.V.([]int32)
		if !isI || len(tt) != len(toks) {
			return nil, fmt.Errorf("%w: tokenizer.ggml.token_type has %d entries for %d tokens", ErrTokenizer, v.Len(), len(toks))
		}
		t.types = tt
	}
	if v, ok := f.Get("tokenizer.ggml.scores"); ok {
		sc, isF := v.V.([]float32)
		if !isF || len(sc) != len(toks) {
			return nil, fmt.Errorf("%w: tokenizer.ggml.scores has %d entries for %d tokens", ErrTokenizer, v.Len(), len(toks))
		}
		t.scores = sc
	}
	id := func(key string, dst *int32) error {
		v, ok := f.Get(key)
		if !ok {
			return nil
		}
		n, isInt := v.Int()
		if !isInt || n < 0 || n >= int64(len(toks)) {
			return fmt.Errorf("%w: %s = %v is not a token of a vocabulary of %d", ErrTokenizer, key, v, len(toks))
		}
		*dst = int32(n)
		return nil
	}
	flag := func(key string, dst *bool) {
		if v, ok := f.Get(key); ok {
			if b, isB := v.V.(bool); isB {
				*dst = b
			}
		}
	}
	for key, dst := range map[string]*int32{"bos": &t.BOS, "eos": &t.EOS, "unknown": &t.UNK, "padding": &t.PAD} {
		if err := id("tokenizer.ggml."+key+"_token_id", dst); err != nil {
			return nil, err
		}
	}
	var merges []string
	if v, ok := f.Get("tokenizer.ggml.merges"); ok {
		m, isStrs := v.V.([]string)
		if !isStrs || len(m) > maxMerge {
			return nil, fmt.Errorf("%w: tokenizer.ggml.merges is not a list of strings", ErrTokenizer)
		}
		merges = m
	}
	switch t.Model {
	case "gpt2":
		if _, ok := f.Get("tokenizer.ggml.pre"); !ok {
			return nil, fmt.Errorf("%w: tokenizer.ggml.pre is missing (llama.cpp would fall back to %q and warn that quality degrades)", ErrUnknownPre, "default")
		}
	case "llama":
		t.AddBOS, t.addSpacePrefix = true, true
		if t.scores == nil {
			return nil, fmt.Errorf("%w: llama vocabulary without tokenizer.ggml.scores", ErrTokenizer)
		}
	default:
		return nil, fmt.Errorf("%w: unsupported tokenizer.ggml.model %q (supported: gpt2, llama)", ErrTokenizer, t.Model)
	}
	if err := t.init(merges); err != nil {
		return nil, err
	}
	flag("tokenizer.ggml.add_bos_token", &t.AddBOS)
	flag("tokenizer.ggml.add_eos_token", &t.AddEOS)
	flag("tokenizer.ggml.add_space_prefix", &t.addSpacePrefix)
	return t, nil
}

// New builds a tokenizer from its parts (what FromGGUF reads), for vocabularies that do not come
// in a GGUF file. scores is needed for "llama", merges for "gpt2", whose pre
// must be one of the supported tokenizer.ggml.pre values.
func New(model, pre string, tokens []string, types []int32, scores []float32, merges []string) (*Tokenizer, error) {
	t := &Tokenizer{Model: model, Pre: pre, tokens: tokens, types: types, scores: scores, BOS: -1, EOS: -1, UNK: -1, PAD: -1}
	if t.types == nil {
		t.types = make([]int32, len(tokens))
		for i := range t.types {
			t.types[i] = TypeNormal
		}
	}
	t.addSpacePrefix = model == "llama"
	if err := t.init(merges); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tokenizer) init(merges []string) error {
	t.ids = make(map[string]int32, len(t.tokens))
	for i, s := range t.tokens {
		if _, dup := t.ids[s]; !dup {
			t.ids[s] = int32(i)
		}
		switch t.types[i] {
		case TypeControl, TypeUserDefined, TypeUnknown:
			if s != "" {
				t.specials[s[0]] = append(t.specials[s[0]], s)
			}
		}
	}
	for _, ss := range t.specials {
		sort.SliceStable(ss, func(i, j int) bool { return len(ss[i]) > len(ss[j]) })
	}
	t.pieces = make([][]byte, len(t.tokens))
	for i := range t.byteToken {
		t.byteToken[i] = -1
	}
	switch t.Model {
	case "gpt2":
		spec, ok := preSpecs[t.Pre]
		if !ok {
			return fmt.Errorf("%w: tokenizer.ggml.pre %q (supported: %s)", ErrUnknownPre, t.Pre, strings.Join(preNames, ", "))
		}
		if len(merges) == 0 && !spec.mergesOptional {
			return fmt.Errorf("%w: byte-level vocabulary without tokenizer.ggml.merges", ErrTokenizer)
		}
		t.pre, t.ignoreMerges, t.AddBOS = spec.split, spec.ignoreMerges, spec.addBOS
		t.ranks = make(map[[2]string]int, len(merges))
		for i, m := range merges {
			a, b, ok := strings.Cut(m, " ")
			if !ok {
				return fmt.Errorf("%w: merge %d %q has no space", ErrTokenizer, i, m)
			}
			if _, dup := t.ranks[[2]string{a, b}]; !dup {
				t.ranks[[2]string{a, b}] = i
			}
		}
		for i, s := range t.tokens {
			t.pieces[i] = gpt2Bytes(s, t.types[i])
		}
		for b := range 256 {
			if id, ok := t.ids[string(byteRune[b])]; ok {
				t.byteToken[b] = id
			}
		}
	case "llama":
		if len(t.scores) != len(t.tokens) {
			return fmt.Errorf("%w: %d scores for %d tokens", ErrTokenizer, len(t.scores), len(t.tokens))
		}
		for i, s := range t.tokens {
			if t.types[i] == TypeByte {
				var b byte
				if _, err := fmt.Sscanf(s, "<0x%02X>", &b); err == nil {
					t.byteToken[b] = int32(i)
					t.pieces[i] = []byte{b}
					continue
				}
			}
			if t.types[i] == TypeControl || t.types[i] == TypeUnknown || t.types[i] == TypeUnused {
				continue
			}
			t.pieces[i] = []byte(strings.ReplaceAll(s, "▁", " "))
		}
	default:
		return fmt.Errorf("%w: unsupported model %q", ErrTokenizer, t.Model)
	}
	return nil
}

// byteRune is GPT-2's bytes_to_unicode table and runeByte its inverse.
var byteRune, runeByte = func() ([256]rune, map[rune]byte) {
	var t [256]rune
	inv := map[rune]byte{}
	n := 0
	for b := range 256 {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			t[b] = rune(b)
		} else {
			t[b] = rune(256 + n)
			n++
		}
		inv[t[b]] = byte(b)
	}
	return t, inv
}()

// BytesToUnicode returns GPT-2's bytes_to_unicode table: the character a
// byte-level vocabulary writes each byte as.
func BytesToUnicode() [256]rune { return byteRune }

// gpt2Bytes decodes a byte-level token's text to bytes; control tokens
// decode to nothing, user-defined ones to their own text.
func gpt2Bytes(s string, typ int32) []byte {
	switch typ {
	case TypeControl, TypeUnused:
		return nil
	case TypeUserDefined:
		return []byte(s)
	}
	out := make([]byte, 0, len(s))
	for _, r := range s {
		b, ok := runeByte[r]
		if !ok {
			return []byte(s) // not byte-level text: keep it as it is
		}
		out = append(out, b)
	}
	return out
}

// VocabSize is the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Token returns token id's text as stored in the vocabulary.
func (t *Tokenizer) Token(id int32) string { return t.tokens[id] }

// Lookup returns the ID of a token's text as stored in the vocabulary.
func (t *Tokenizer) Lookup(s string) (int32, bool) { id, ok := t.ids[s]; return id, ok }

// IsControl reports whether id is a control token (BOS, EOS, …).
func (t *Tokenizer) IsControl(id int32) bool { return t.types[id] == TypeControl }

// Encode tokenizes text. addSpecial adds BOS/EOS as the vocabulary asks;
// parseSpecial matches control tokens written in the text (otherwise their
// text is tokenized like any other). User-defined tokens are matched either
// way, as llama.cpp and Hugging Face tokenizers do.
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int32 {
	var out []int32
	if addSpecial && t.AddBOS && t.BOS >= 0 {
		out = append(out, t.BOS)
	}
	prevSpecial := true
	for _, frag := range t.fragments(text, parseSpecial) {
		if frag.special >= 0 {
			out = append(out, frag.special)
			prevSpecial = true
			continue
		}
		if t.Model == "llama" {
			s := frag.text
			if t.addSpacePrefix && prevSpecial {
				s = " " + s
			}
			out = t.spm(strings.ReplaceAll(s, " ", "▁"), out)
		} else {
			for _, w := range t.pre.split(frag.text) {
				out = t.bpe(w, out)
			}
		}
		prevSpecial = false
	}
	if addSpecial && t.AddEOS && t.EOS >= 0 {
		out = append(out, t.EOS)
	}
	return out
}

type fragment struct {
	text    string
	special int32
}

// fragments splits text around special tokens (longest match first);
// without parseSpecial only user-defined ones count.
func (t *Tokenizer) fragments(text string, parseSpecial bool) []fragment {
	var out []fragment
	start := 0
	for i := 0; i < len(text); {
		matched := ""
		for _, s := range t.specials[text[i]] {
			if strings.HasPrefix(text[i:], s) && (parseSpecial || t.types[t.ids[s]] == TypeUserDefined) {
				matched = s
				break
			}
		}
		if matched == "" {
			i++
			continue
		}
		if start < i {
			out = append(out, fragment{text[start:i], -1})
		}
		out = append(out, fragment{"", t.ids[matched]})
		i += len(matched)
		start = i
	}
	if start < len(text) {
		out = append(out, fragment{text[start:], -1})
	}
	return out
}

// bpe encodes one pre-tokenized word with byte-level BPE merges.
func (t *Tokenizer) bpe(word string, out []int32) []int32 {
	var sb strings.Builder
	for _, b := range []byte(word) {
		sb.WriteRune(byteRune[b])
	}
	mapped := sb.String()
	if t.ignoreMerges {
		if id, ok := t.ids[mapped]; ok {
			return append(out, id)
		}
	}
	syms := splitRunes(mapped)
	rank := func(i int) (int, bool) {
		r, ok := t.ranks[[2]string{syms.text[i], syms.text[syms.next[i]]}]
		return r, ok
	}
	syms.merge(func(i int) (float64, bool) {
		r, ok := rank(i)
		return -float64(r), ok
	})
	for i := 0; i >= 0; i = syms.next[i] {
		s := syms.text[i]
		if id, ok := t.ids[s]; ok {
			out = append(out, id)
			continue
		}
		for _, r := range s { // unreachable for byte-level vocabularies
			if b, ok := runeByte[r]; ok && t.byteToken[b] >= 0 {
				out = append(out, t.byteToken[b])
			}
		}
	}
	return out
}

// spm encodes text (spaces already ▁) by merging the adjacent pair whose
// concatenation is the vocabulary token of highest score, with byte
// fallback for characters outside the vocabulary.
func (t *Tokenizer) spm(text string, out []int32) []int32 {
	if text == "" {
		return out
	}
	syms := splitRunes(text)
	syms.merge(func(i int) (float64, bool) {
		id, ok := t.ids[syms.text[i]+syms.text[syms.next[i]]]
		if !ok {
			return 0, false
		}
		return float64(t.scores[id]), true
	})
	for i := 0; i >= 0; i = syms.next[i] {
		s := syms.text[i]
		if id, ok := t.ids[s]; ok && t.types[id] != TypeUnused {
			out = append(out, id)
			continue
		}
		for _, b := range []byte(s) {
			switch {
			case t.byteToken[b] >= 0:
				out = append(out, t.byteToken[b])
			case t.UNK >= 0:
				out = append(out, t.UNK)
			}
		}
	}
	return out
}

// symbols is a linked list of text pieces being merged.
type symbols struct {
	text       []string
	prev, next []int
}

func splitRunes(s string) *symbols {
	sy := &symbols{}
	for i, r := range s {
		_ = i
		sy.text = append(sy.text, string(r))
	}
	n := len(sy.text)
	sy.prev, sy.next = make([]int, n), make([]int, n)
	for i := range n {
		sy.prev[i], sy.next[i] = i-1, i+1
	}
	if n > 0 {
		sy.next[n-1] = -1
	}
	return sy
}

type bigram struct {
	left     int
	score    float64
	leftText string
	size     int // len of left+right text when queued, to detect stale entries
}

type bigramQueue []bigram

func (q bigramQueue) Len() int { return len(q) }
func (q bigramQueue) Less(i, j int) bool {
	if q[i].score != q[j].score {
		return q[i].score > q[j].score
	}
	return q[i].left < q[j].left
}
func (q bigramQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *bigramQueue) Push(x any)   { *q = append(*q, x.(bigram)) }
func (q *bigramQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// merge repeatedly joins the adjacent pair of best score (ties: leftmost)
// while score reports a pair as mergeable.
func (sy *symbols) merge(score func(left int) (float64, bool)) {
	q := &bigramQueue{}
	push := func(left int) {
		if left < 0 || sy.next[left] < 0 {
			return
		}
		if s, ok := score(left); ok {
			heap.Push(q, bigram{left, s, sy.text[left], len(sy.text[left]) + len(sy.text[sy.next[left]])})
		}
	}
	for i := 0; i >= 0 && i < len(sy.text); i = sy.next[i] {
		push(i)
	}
	for q.Len() > 0 {
		b := heap.Pop(q).(bigram)
		l := b.left
		r := sy.next[l]
		if sy.text[l] == "" || r < 0 || sy.text[l] != b.leftText || len(sy.text[l])+len(sy.text[r]) != b.size {
			continue // stale: one side has merged since
		}
		sy.text[l] += sy.text[r]
		sy.text[r] = ""
		sy.next[l] = sy.next[r]
		if sy.next[r] >= 0 {
			sy.prev[sy.next[r]] = l
		}
		push(sy.prev[l])
		push(l)
	}
}

// Piece returns the bytes token id decodes to (empty for control tokens).
func (t *Tokenizer) Piece(id int32) []byte {
	if id < 0 || int(id) >= len(t.pieces) {
		return nil
	}
	return t.pieces[id]
}

// Decode turns tokens into text, dropping control tokens. Invalid UTF-8
// (a sequence cut short) is replaced by U+FFFD.
func (t *Tokenizer) Decode(ids []int32) string {
	d := t.NewDecoder()
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(d.Next(id))
	}
	sb.WriteString(d.Flush())
	return sb.String()
}

// Decoder decodes a stream of tokens to text, holding back bytes until
// they form complete UTF-8 characters. Not safe for concurrent use.
type Decoder struct {
	t       *Tokenizer
	pending []byte
	started bool
}

// NewDecoder starts decoding a new sequence.
func (t *Tokenizer) NewDecoder() *Decoder { return &Decoder{t: t} }

// Next adds a token and returns the text that is now complete.
func (d *Decoder) Next(id int32) string {
	p := d.t.Piece(id)
	if len(p) == 0 {
		return ""
	}
	// SentencePiece adds a space before the first word; strip it once.
	if !d.started && d.t.Model == "llama" && d.t.addSpacePrefix && p[0] == ' ' && d.t.types[id] != TypeByte {
		p = p[1:]
	}
	d.started = true
	d.pending = append(d.pending, p...)
	n := completeUTF8(d.pending)
	out := strings.ToValidUTF8(string(d.pending[:n]), "\uFFFD")
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return out
}

// Flush returns whatever is held back, invalid bytes replaced by U+FFFD.
func (d *Decoder) Flush() string {
	out := strings.ToValidUTF8(string(d.pending), "\uFFFD")
	d.pending = d.pending[:0]
	return out
}

// completeUTF8 returns the length of the longest prefix of b that does not
// end inside a UTF-8 character that may still be completed; invalid bytes
// count as complete (they will never become valid).
func completeUTF8(b []byte) int {
	// A character is at most 4 bytes: look back at most 3 for a lead byte.
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c&0xC0 == 0x80 {
			continue // continuation byte
		}
		need := 0
		switch {
		case c&0xE0 == 0xC0:
			need = 2
		case c&0xF0 == 0xE0:
			need = 3
		case c&0xF8 == 0xF0:
			need = 4
		}
		if need > k && !utf8.FullRune(b[len(b)-k:]) {
			return len(b) - k
		}
		return len(b)
	}
	return len(b)
}
