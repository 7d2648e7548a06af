package tokenizer

import "unicode"

// A pre-tokenizer splits text into words before BPE runs on each, as the
// regular expressions of tokenizer.ggml.pre do. Go's regexp has no
// lookahead, so each pattern is written out as ordered alternatives over
// runes; an alternative returns the length of its match at i, or 0.
type alt func(r []rune, i int) int

type preTokenizer []alt

// Pre-tokenizers by tokenizer.ggml.pre. Unknown values fall back to GPT-2's.
var preTokenizers = map[string]preTokenizer{
	"gpt-2": gpt2Pre, "default": gpt2Pre, "olmo": gpt2Pre,
	"llama-bpe": llama3Pre, "llama3": llama3Pre, "llama-v3": llama3Pre,
	"qwen2": qwen2Pre, "deepseek-llm": qwen2Pre,
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
var gpt2Pre = preTokenizer{contraction(false), optSpace(isL), optSpace(isN), optSpace(isOther), spacesNotBeforeText, spaces}

// Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
var llama3Pre = preTokenizer{contraction(true), letters, digits(3), punctNewlines, spacesToNewline, spacesNotBeforeText, spaces}

// Qwen2: as Llama 3 with single digits.
var qwen2Pre = preTokenizer{contraction(true), letters, digits(1), punctNewlines, spacesToNewline, spacesNotBeforeText, spaces}

func isL(c rune) bool     { return unicode.IsLetter(c) }
func isN(c rune) bool     { return unicode.IsNumber(c) }
func isS(c rune) bool     { return unicode.IsSpace(c) }
func isNL(c rune) bool    { return c == '\r' || c == '\n' }
func isOther(c rune) bool { return !isS(c) && !isL(c) && !isN(c) }

func run(r []rune, i int, f func(rune) bool) int {
	j := i
	for j < len(r) && f(r[j]) {
		j++
	}
	return j - i
}

func contraction(fold bool) alt {
	suffixes := []string{"s", "t", "re", "ve", "m", "ll", "d"}
	return func(r []rune, i int) int {
		if r[i] != '\'' {
			return 0
		}
	next:
		for _, s := range suffixes {
			if i+1+len(s) > len(r) {
				continue
			}
			for k, c := range s {
				got := r[i+1+k]
				if fold {
					got = unicode.ToLower(got)
				}
				if got != c {
					continue next
				}
			}
			return 1 + len(s)
		}
		return 0
	}
}

// optSpace matches " ?X+".
func optSpace(f func(rune) bool) alt {
	return func(r []rune, i int) int {
		if r[i] == ' ' && i+1 < len(r) && f(r[i+1]) {
			return 1 + run(r, i+1, f)
		}
		return run(r, i, f)
	}
}

// letters matches [^\r\n\p{L}\p{N}]?\p{L}+.
func letters(r []rune, i int) int {
	if !isNL(r[i]) && !isL(r[i]) && !isN(r[i]) && i+1 < len(r) && isL(r[i+1]) {
		return 1 + run(r, i+1, isL)
	}
	return run(r, i, isL)
}

func digits(most int) alt {
	return func(r []rune, i int) int { return min(most, run(r, i, isN)) }
}

// punctNewlines matches " ?[^\s\p{L}\p{N}]+[\r\n]*".
func punctNewlines(r []rune, i int) int {
	j := i
	if r[j] == ' ' && j+1 < len(r) && isOther(r[j+1]) {
		j++
	}
	n := run(r, j, isOther)
	if n == 0 {
		return 0
	}
	j += n
	return j + run(r, j, isNL) - i
}

// spacesToNewline matches \s*[\r\n]+: whitespace up to its last newline.
func spacesToNewline(r []rune, i int) int {
	n := run(r, i, isS)
	for k := n - 1; k >= 0; k-- {
		if isNL(r[i+k]) {
			return k + 1
		}
	}
	return 0
}

// spacesNotBeforeText matches \s+(?!\S): a whitespace run, less its last
// character when text follows (that one goes with the next word).
func spacesNotBeforeText(r []rune, i int) int {
	n := run(r, i, isS)
	if n == 0 || i+n == len(r) {
		return n
	}
	return n - 1
}

func spaces(r []rune, i int) int { return run(r, i, isS) }

// split cuts text into words.
func (p preTokenizer) split(text string) []string {
	r := []rune(text)
	var words []string
	for i := 0; i < len(r); {
		n := 0
		for _, a := range p {
			if n = a(r, i); n > 0 {
				break
			}
		}
		n = max(n, 1)
		words = append(words, string(r[i:i+n]))
		i += n
	}
	return words
}
