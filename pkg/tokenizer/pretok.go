package tokenizer

import (
	"sort"
	"unicode"
)

// A pre-tokenizer splits text into words before BPE runs on each, as the
// regular expressions named by tokenizer.ggml.pre do in llama.cpp
// (src/llama-vocab.cpp) and in Hugging Face tokenizers. Go's regexp has no
// lookahead, so each expression is written out as ordered alternatives over
// runes: an alternative returns the length of its match at i, or 0, with the
// result a backtracking engine would give.
type alt func(r []rune, i int) int

// A pattern is one regular expression: its alternatives, tried in order.
type pattern []alt

func (p pattern) match(r []rune, i int) int {
	for _, a := range p {
		if n := a(r, i); n > 0 {
			return n
		}
	}
	return 0
}

// A preTokenizer applies its patterns in turn, each one to every piece the
// one before it left. Matches and the text between them both become pieces
// (Hugging Face's "Isolated" split, llama.cpp's unicode_regex_split), and an
// expression sees a piece as the whole text: \s+(?!\S) matches at a piece's
// end.
type preTokenizer []pattern

// split cuts text into words.
func (p preTokenizer) split(text string) []string {
	pieces := [][]rune{[]rune(text)}
	for _, pat := range p {
		var next [][]rune
		for _, pc := range pieces {
			gap := 0
			for i := 0; i < len(pc); {
				n := pat.match(pc, i)
				if n == 0 {
					i++
					continue
				}
				if gap < i {
					next = append(next, pc[gap:i])
				}
				next = append(next, pc[i:i+n])
				i += n
				gap = i
			}
			if gap < len(pc) {
				next = append(next, pc[gap:])
			}
		}
		pieces = next
	}
	words := make([]string, len(pieces))
	for i, pc := range pieces {
		words[i] = string(pc)
	}
	return words
}

// preSpec is what a tokenizer.ggml.pre value selects in llama.cpp.
type preSpec struct {
	split preTokenizer
	// ignoreMerges emits a word that is itself a token whole, without
	// running BPE on it (llama.cpp's ignore_merges).
	ignoreMerges bool
	// addBOS is add_bos_token's value when the file does not set it.
	addBOS bool
	// mergesOptional allows a vocabulary without tokenizer.ggml.merges
	// (llama.cpp lets kimi-k2 load without them).
	mergesOptional bool
}

// preSpecs maps every supported tokenizer.ggml.pre value to its rules. The
// names and their grouping are llama.cpp's (llama_vocab::impl::load); the
// expressions are the originals of the models' tokenizer.json or
// tokenization code where llama.cpp approximates them (gpt-4o, tekken,
// kimi-k2). An unknown value is an error, never a fallback.
var preSpecs = func() map[string]preSpec {
	m := map[string]preSpec{}
	add := func(s preSpec, names ...string) {
		for _, n := range names {
			m[n] = s
		}
	}
	add(preSpec{split: preTokenizer{defaultPunct, gpt2Pat, numbers, asciiDigits3}}, "default")
	add(preSpec{split: preTokenizer{gpt2Pat}}, "gpt-2", "phi-2", "mpt", "olmo")
	add(preSpec{split: preTokenizer{llama3Pat}, ignoreMerges: true, addBOS: true}, "llama-bpe", "llama3", "llama-v3", "falcon3")
	add(preSpec{split: preTokenizer{llama3Pat}}, "dbrx", "smaug-bpe", "glm4", "chatglm-bpe")
	add(preSpec{split: preTokenizer{qwen2Pat}}, "qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", "hunyuan")
	add(preSpec{split: preTokenizer{qwen35Pat}}, "qwen35")
	add(preSpec{split: preTokenizer{oneNewline, dsLLMLetters, dsLLMPunct, spacesAtEnd, dsLLMCJK, numbers}}, "deepseek-llm")
	add(preSpec{split: preTokenizer{oneNewline, dsCoderLetters, dsCoderPunct, dsLLMCJK, digit}}, "deepseek-coder")
	add(preSpec{split: preTokenizer{digits3, dsV3Kana, dsV3Pat}}, "deepseek-v3", "hunyuan-dense", "joyai-llm")
	add(preSpec{split: preTokenizer{gpt4oPat}}, "gpt-4o", "llama4", "minimax-m2", "kanana2")
	add(preSpec{split: preTokenizer{kimiPat}, mergesOptional: true}, "kimi-k2")
	add(preSpec{split: preTokenizer{falconPunct, gpt2Pat, asciiDigits3}}, "falcon")
	add(preSpec{split: preTokenizer{digit, gpt2Pat}}, "starcoder", "refact", "smollm", "codeshell", "command-r", "exaone", "minerva-7b", "mellum2")
	add(preSpec{split: preTokenizer{tekkenPat}, ignoreMerges: true, addBOS: true}, "tekken")
	return m
}()

// preNames is the sorted list of supported tokenizer.ggml.pre values.
var preNames = func() []string {
	var ns []string
	for n := range preSpecs {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}()

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
var gpt2Pat = pattern{contraction(false), optional(isBlank, isL), optional(isBlank, isN), punct(isOther, none), spacesNotBeforeText, spaces}

// Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
var llama3Pat = pattern{contraction(true), optional(notNLLN, isL), upTo(isN, 3), punct(isOther, isNL), spacesToNewline, spacesNotBeforeText, spaces}

// Qwen2: as Llama 3 with \p{N} alone.
var qwen2Pat = pattern{contraction(true), optional(notNLLN, isL), upTo(isN, 1), punct(isOther, isNL), spacesToNewline, spacesNotBeforeText, spaces}

// Qwen3.5: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}|
// ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
var qwen35Pat = pattern{contraction(true), optional(notNLLN, isLM), upTo(isN, 1), punct(func(c rune) bool { return isOther(c) && !isM(c) }, isNL), spacesToNewline, spacesNotBeforeText, spaces}

// DeepSeek LLM: [\r\n], \s?[A-Za-zµÀ-ÖØ-ö…]+, \s?[!-/:-~！-／：-～‘-‟　-。]+, \s+$,
// [一-龥ࠀ-一가-퟿]+, \p{N}+ — each splitting what the one before left.
var (
	oneNewline   = pattern{upTo(isNL, 1)}
	dsLLMLetters = pattern{optional(isSpace, inRanges("A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1f7dᾀ-ᾴᾶ-ᾼ\u1fbeῂ-ῄῆ-ῌῐ-\u1fd3ῖ-\u1fdbῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212a-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃"))}
	dsLLMPunct   = pattern{optional(isSpace, inRanges("!-/:-~！-／：-～‘-‟　-。"))}
	// spacesAtEnd is \s+$. After whitespace at i-1 it fails at once: i-1
	// was tried and its run did not reach the end, so neither does i's
	// (scanning again would make long runs quadratic).
	spacesAtEnd = pattern{func(r []rune, i int) int {
		if i > 0 && isSpace(r[i-1]) {
			return 0
		}
		if n := run(r, i, isSpace); i+n == len(r) {
			return n
		}
		return 0
	}}
	dsLLMCJK = pattern{runOf(inRanges("一-龥ࠀ-一가-퟿"))}
	numbers  = pattern{runOf(isN)}
)

// DeepSeek Coder: [\r\n], \s?\p{L}+, \s?\p{P}+, [一-龥ࠀ-一가-퟿]+, \p{N}.
var (
	dsCoderLetters = pattern{optional(isSpace, isL)}
	dsCoderPunct   = pattern{optional(isSpace, isP)}
	digit          = pattern{upTo(isN, 1)}
)

// DeepSeek V3: \p{N}{1,3}, [一-龥぀-ゟ゠-ヿ]+, then
// [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
// ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
var (
	digits3  = pattern{upTo(isN, 3)}
	dsV3Kana = pattern{runOf(inRanges("一-龥぀-ゟ゠-ヿ"))}
	dsV3Pat  = pattern{
		required(inRanges("!-/:-@[-`{-~"), inRanges("A-Za-z")),
		optional(func(c rune) bool { return !isNL(c) && !isL(c) && !isP(c) && !isSym(c) }, isLM),
		punct(func(c rune) bool { return isP(c) || isSym(c) }, isNL),
		spacesToNewline, spacesNotBeforeText, spaces,
	}
)

// GPT-4o (o200k, gpt-oss, Llama 4), from tokenizer.json:
// [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
// [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
// \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
// llama.cpp approximates the case classes with (?=\p{L})[^a-z] and
// (?=\p{L})[^A-Z], which joins "ÉcoleÉcole" that this splits in two.
var gpt4oPat = pattern{
	upperThenLower(notNLLN, isUpperish, isLowerish, true),
	upperRun(notNLLN, isUpperish, isLowerish, true),
	upTo(isN, 3), punct(isOther, isNLOrSlash), spacesToNewline, spacesNotBeforeText, spaces,
}

// Tekken (Mistral NeMo and later): as GPT-4o without the contractions, with
// \p{N} alone.
var tekkenPat = pattern{
	upperThenLower(notNLLN, isUpperish, isLowerish, false),
	upperRun(notNLLN, isUpperish, isLowerish, false),
	upTo(isN, 1), punct(isOther, isNLOrSlash), spacesToNewline, spacesNotBeforeText, spaces,
}

// Kimi K2, from its tokenization_kimi.py: GPT-4o's word rules with Han
// characters taken out and matched first on their own:
// [\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|…)?|
// [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|…)?|
// \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// llama.cpp's custom splitter for it drops the case classes, so it keeps
// "HelloWorld" whole where Kimi's tokenizer splits it.
var kimiPat = pattern{
	runOf(isHan),
	upperThenLower(notNLLN, func(c rune) bool { return isUpperish(c) && !isHan(c) }, func(c rune) bool { return isLowerish(c) && !isHan(c) }, true),
	upperRun(notNLLN, func(c rune) bool { return isUpperish(c) && !isHan(c) }, func(c rune) bool { return isLowerish(c) && !isHan(c) }, true),
	upTo(isN, 3), punct(isOther, isNL), spacesToNewline, spacesNotBeforeText, spaces,
}

// Falcon: [\p{P}\$\+<=>\^~\|`]+, GPT-2's expression, [0-9][0-9][0-9].
var (
	falconPunct  = pattern{runOf(func(c rune) bool { return isP(c) || inSet(c, "$+<=>^~|`") })}
	asciiDigits3 = pattern{func(r []rune, i int) int {
		if i+3 <= len(r) && run(r[:i+3], i, isASCIIDigit) == 3 {
			return 3
		}
		return 0
	}}
)

// llama.cpp's "default": [\p{P}\$\+<=>\^~\|]+, GPT-2's expression, \p{N}+,
// [0-9][0-9][0-9].
var defaultPunct = pattern{runOf(func(c rune) bool { return isP(c) || inSet(c, "$+<=>^~|") })}

// Character classes. \s is Unicode's White_Space, as in Python's and
// Rust's regex and llama.cpp's tables.
func none(rune) bool           { return false }
func isL(c rune) bool          { return unicode.IsLetter(c) }
func isN(c rune) bool          { return unicode.IsNumber(c) }
func isM(c rune) bool          { return unicode.IsMark(c) }
func isP(c rune) bool          { return unicode.IsPunct(c) }
func isSym(c rune) bool        { return unicode.IsSymbol(c) }
func isLM(c rune) bool         { return isL(c) || isM(c) }
func isSpace(c rune) bool      { return unicode.IsSpace(c) }
func isBlank(c rune) bool      { return c == ' ' }
func isNL(c rune) bool         { return c == '\r' || c == '\n' }
func isNLOrSlash(c rune) bool  { return isNL(c) || c == '/' }
func isOther(c rune) bool      { return !isSpace(c) && !isL(c) && !isN(c) }
func isHan(c rune) bool        { return unicode.Is(unicode.Han, c) }
func isASCIIDigit(c rune) bool { return '0' <= c && c <= '9' }

// notNLLN is [^\r\n\p{L}\p{N}].
func notNLLN(c rune) bool { return !isNL(c) && !isL(c) && !isN(c) }

// isUpperish is [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], isLowerish
// [\p{Ll}\p{Lm}\p{Lo}\p{M}].
func isUpperish(c rune) bool {
	return unicode.In(c, unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo) || isM(c)
}
func isLowerish(c rune) bool { return unicode.In(c, unicode.Ll, unicode.Lm, unicode.Lo) || isM(c) }

func inSet(c rune, set string) bool {
	for _, s := range set {
		if c == s {
			return true
		}
	}
	return false
}

// inRanges is a bracket expression's contents written as literal
// characters and "a-z" ranges, as the expressions of llama-vocab.cpp are.
func inRanges(spec string) func(rune) bool {
	r := []rune(spec)
	var lo, hi []rune
	for i := 0; i < len(r); i++ {
		if i+2 < len(r) && r[i+1] == '-' {
			lo, hi = append(lo, r[i]), append(hi, r[i+2])
			i += 2
			continue
		}
		lo, hi = append(lo, r[i]), append(hi, r[i])
	}
	return func(c rune) bool {
		for k := range lo {
			if lo[k] <= c && c <= hi[k] {
				return true
			}
		}
		return false
	}
}

func run(r []rune, i int, f func(rune) bool) int {
	j := i
	for j < len(r) && f(r[j]) {
		j++
	}
	return j - i
}

// runOf matches X+.
func runOf(f func(rune) bool) alt { return func(r []rune, i int) int { return run(r, i, f) } }

// upTo matches X{1,most}.
func upTo(f func(rune) bool, most int) alt {
	return func(r []rune, i int) int { return min(most, run(r, i, f)) }
}

// optional matches P?X+: a character of P is taken only when X follows it.
func optional(p, x func(rune) bool) alt {
	return func(r []rune, i int) int {
		if p(r[i]) && i+1 < len(r) && x(r[i+1]) {
			return 1 + run(r, i+1, x)
		}
		return run(r, i, x)
	}
}

// required matches PX+.
func required(p, x func(rune) bool) alt {
	return func(r []rune, i int) int {
		if p(r[i]) && i+1 < len(r) && x(r[i+1]) {
			return 1 + run(r, i+1, x)
		}
		return 0
	}
}

// punct matches " ?X+T*".
func punct(x, tail func(rune) bool) alt {
	return func(r []rune, i int) int {
		j := i
		if r[j] == ' ' && j+1 < len(r) && x(r[j+1]) {
			j++
		}
		n := run(r, j, x)
		if n == 0 {
			return 0
		}
		j += n
		return j + run(r, j, tail) - i
	}
}

// contractions are the suffixes of 's|'t|'re|'ve|'m|'ll|'d.
var contractions = []string{"s", "t", "re", "ve", "m", "ll", "d"}

// contractionAt returns the length of a contraction at i, or 0. fold
// compares as (?i:…) does, by simple case folding ("'ſ" is one).
func contractionAt(r []rune, i int, fold bool) int {
	if i >= len(r) || r[i] != '\'' {
		return 0
	}
next:
	for _, s := range contractions {
		if i+1+len(s) > len(r) {
			continue
		}
		for k, c := range s {
			got := r[i+1+k]
			if got != c && !(fold && sameFold(got, c)) {
				continue next
			}
		}
		return 1 + len(s)
	}
	return 0
}

// sameFold reports whether a and b are in one simple case-folding orbit.
func sameFold(a, b rune) bool {
	for f := unicode.SimpleFold(a); f != a; f = unicode.SimpleFold(f) {
		if f == b {
			return true
		}
	}
	return false
}

func contraction(fold bool) alt {
	return func(r []rune, i int) int { return contractionAt(r, i, fold) }
}

// upperThenLower matches P?U*L+C? where U and L may share characters: U*
// gives back characters until L+ can start.
func upperThenLower(p, u, l func(rune) bool, withContraction bool) alt {
	body := func(r []rune, s int) int { // end of U*L+ at s, or -1
		j := s + run(r, s, u)
		if j < len(r) && l(r[j]) {
			return j + run(r, j, l)
		}
		for k := j - 1; k >= s; k-- { // backtrack: L+ is then one character
			if l(r[k]) {
				return k + 1
			}
		}
		return -1
	}
	return func(r []rune, i int) int {
		end := -1
		if p(r[i]) && i+1 < len(r) {
			end = body(r, i+1)
		}
		if end < 0 {
			end = body(r, i)
		}
		if end < 0 {
			return 0
		}
		if withContraction {
			end += contractionAt(r, end, true)
		}
		return end - i
	}
}

// upperRun matches P?U+L*C?.
func upperRun(p, u, l func(rune) bool, withContraction bool) alt {
	return func(r []rune, i int) int {
		s := i
		if p(r[i]) && i+1 < len(r) && u(r[i+1]) {
			s = i + 1
		}
		n := run(r, s, u)
		if n == 0 {
			return 0
		}
		end := s + n
		end += run(r, end, l)
		if withContraction {
			end += contractionAt(r, end, true)
		}
		return end - i
	}
}

// spacesToNewline matches \s*[\r\n]+: whitespace up to its last newline.
func spacesToNewline(r []rune, i int) int {
	n := run(r, i, isSpace)
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
	n := run(r, i, isSpace)
	if n == 0 || i+n == len(r) {
		return n
	}
	return n - 1
}

func spaces(r []rune, i int) int { return run(r, i, isSpace) }
