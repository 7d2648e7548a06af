package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// tagSyntax is the block most families compose: reasoning in
// <think>…</think> where the reply begins, then text in which tool calls
// are marked up, alone or in a section that holds a run of them.
type tagSyntax struct {
	family string
	// think: the family writes <think>…</think> reasoning.
	think bool
	// sectionOpen and sectionClose surround a run of calls (DeepSeek,
	// Kimi-K2); empty when calls stand alone.
	sectionOpen, sectionClose string
	// open and close surround one call. close is empty when a call ends
	// with its JSON value (Mistral, Llama 3).
	open, close string
	// jsonBody: the call's body is a JSON object or array, found by
	// scanning it (so close may appear inside its strings).
	jsonBody bool
	// keepOpen: open is the call's first byte, part of its body (Llama 3's
	// "{").
	keepOpen bool
	// lead: calls are recognised only where the content begins or right
	// after a call (Llama 3 answers with the bare JSON of a call).
	lead bool
	// start reports whether the beginning of a call's body (at most
	// startCheckBytes) can still be one; nil accepts any.
	start func(prefix []byte) bool
	// read parses a call's body: between open and close, or its JSON. It
	// returns errMore when the body is a call's beginning: close was part
	// of a value, and the call goes on past it.
	read func(body []byte) ([]rawCall, error)
}

// tagged makes the reader of a family built on s.
func tagged(s *tagSyntax) func(*Parser) reader {
	return func(p *Parser) reader {
		r := &tagReader{s: s, thinkOpen: []byte("<think>"), thinkClose: []byte("</think>"), open: []byte(s.open)}
		if p.cfg.ToolCalls && s.open != "" && !s.lead {
			if s.sectionOpen != "" {
				r.openers = toBytes(s.sectionOpen)
			} else {
				r.openers = toBytes(s.open)
			}
		}
		r.split = p.splitReasoning()
		r.leadCalls = p.cfg.ToolCalls && s.lead
		if s.think && p.cfg.InReasoning {
			r.state = tsThink
		}
		return r
	}
}

// maxCloseRetries bounds how often a call's closing tag may turn out to
// be part of a value (each time the body is parsed again).
const maxCloseRetries = 64

type tagState uint8

const (
	tsLead    tagState = iota // where content begins: space, <think>, a lead call
	tsThink                   // in reasoning
	tsText                    // in text
	tsSection                 // in a section of calls, between calls
	tsCall                    // in a call
)

type tagReader struct {
	s                     *tagSyntax
	thinkOpen, thinkClose []byte
	open                  []byte
	openers               [][]byte // what opens calls in text
	split                 bool     // reasoning is split out, not left in the text
	leadCalls             bool
	state                 tagState
	// thinking: leading space of the reasoning is behind.
	thinking bool
	// afterThink: only whitespace since </think>; it is markup too.
	afterThink bool
	// afterCall: only whitespace since a call. It is markup too if a call
	// or the end follows; text keeps it.
	afterCall bool
	called    bool // a call came out: no more <think>
	// A section or call being read, as offsets into Parser.buf: what
	// precedes openEnd (space, the section's and the call's openers) goes
	// back as text if it does not parse.
	openEnd, bodyAt int
	sectionCalls    bool // calls came out of the current section
	pos             int  // in a section: where its unread part begins
	scanned         int  // in a call: how far close was looked for
	checked         int  // in a call: how much of its beginning passed start
	retries         int  // in a call: closes that were part of a value
	js              jsonScan
	jsonEnd         int // in a call: where its JSON ended, or -1
}

func (r *tagReader) read(p *Parser, end bool) {
	for {
		var more bool
		switch r.state {
		case tsLead:
			more = r.lead(p, end)
		case tsThink:
			more = r.reason(p, end)
		case tsText:
			more = r.text(p, end)
		case tsSection:
			more = r.section(p, end)
		case tsCall:
			more = r.call(p, end)
		}
		if !more {
			return
		}
	}
}

func (r *tagReader) lead(p *Parser, end bool) bool {
	n := leadingSpace(p.buf)
	if r.afterThink {
		p.drop(n) // space after </think> is markup
		n = 0
	}
	rest := p.buf[n:]
	if len(rest) == 0 && n <= maxHeldSpace && !end {
		return false
	}
	if n <= maxHeldSpace {
		if r.s.think && !r.called {
			if bytes.HasPrefix(rest, r.thinkOpen) {
				r.markup(p, n+len(r.thinkOpen))
				r.state, r.thinking = tsThink, false
				return true
			}
			if isPrefix(rest, r.thinkOpen) && !end {
				return false
			}
		}
		if r.leadCalls {
			if bytes.HasPrefix(rest, r.open) {
				r.beginCall(n)
				return true
			}
			if isPrefix(rest, r.open) && !end {
				return false
			}
		}
	}
	r.state, r.afterThink = tsText, false
	return true
}

func (r *tagReader) reason(p *Parser, end bool) bool {
	k := KindText
	if r.split {
		k = KindReasoning
	}
	if !r.thinking {
		r.markup(p, leadingSpace(p.buf))
		if len(p.buf) == 0 {
			return false
		}
		r.thinking = true
	}
	if at := bytes.Index(p.buf, r.thinkClose); at >= 0 {
		ws := min(trailingSpace(p.buf[:at]), maxHeldSpace)
		p.emit(k, at-ws)
		r.markup(p, ws+len(r.thinkClose))
		r.state, r.afterThink = tsLead, r.split
		return true
	}
	n := len(p.buf) - trailingSpace(p.buf)
	if !end {
		n = emittable(p.buf, [][]byte{r.thinkClose}, true)
	}
	p.emit(k, n)
	if end {
		r.markup(p, len(p.buf)) // trailing space, touching the end
	}
	return false
}

// markup consumes the first n bytes of the buffer, reasoning's markup:
// dropped when reasoning is split out, else text.
func (r *tagReader) markup(p *Parser, n int) {
	if r.split {
		p.drop(n)
	} else {
		p.emit(KindText, n)
	}
}

func (r *tagReader) text(p *Parser, end bool) bool {
	if r.afterThink {
		p.drop(leadingSpace(p.buf))
		if len(p.buf) == 0 {
			return false
		}
		r.afterThink = false
	}
	if at := firstMarker(p.buf, r.openers); at >= 0 {
		// Space before markup is markup: hold it with the call.
		ws := min(trailingSpace(p.buf[:at]), maxHeldSpace)
		r.emitText(p, at-ws)
		if r.s.sectionOpen != "" {
			r.openEnd = ws + len(r.s.sectionOpen)
			r.pos, r.sectionCalls, r.state = r.openEnd, false, tsSection
		} else {
			r.beginCall(ws)
		}
		return true
	}
	n := len(p.buf)
	switch {
	case !end:
		n = emittable(p.buf, r.openers, len(r.openers) > 0 || r.afterCall)
	case r.afterCall && leadingSpace(p.buf) == n:
		n -= min(n, maxHeldSpace) // space after the last call, touching the end
	}
	r.emitText(p, n)
	if end {
		p.drop(len(p.buf)) // dropped space
	}
	return false
}

// emitText emits the first n bytes of the buffer as text.
func (r *tagReader) emitText(p *Parser, n int) {
	if leadingSpace(p.buf[:n]) < n {
		r.afterCall = false
	}
	p.emit(KindText, n)
}

func (r *tagReader) section(p *Parser, end bool) bool {
	if r.sectionCalls {
		p.drop(leadingSpace(p.buf)) // space between calls is markup
	}
	b := p.buf[r.pos:]
	n := leadingSpace(b)
	rest := b[n:]
	closer := []byte(r.s.sectionClose)
	switch {
	case n > maxHeldSpace:
	case bytes.HasPrefix(rest, r.open):
		r.beginCall(r.pos + n)
		return true
	case bytes.HasPrefix(rest, closer):
		if !r.sectionCalls {
			r.fail(p, malformed(r.s.family, "no call between %s and %s", r.s.sectionOpen, r.s.sectionClose))
			return true
		}
		p.drop(r.pos + n + len(closer))
		r.state, r.afterCall = tsText, true
		return true
	case !end && (isPrefix(rest, r.open) || isPrefix(rest, closer)):
		return false
	}
	if !r.sectionCalls {
		r.fail(p, malformed(r.s.family, "%s not followed by %s", r.s.sectionOpen, r.s.open))
		return true
	}
	// Calls came out of the section, which did not close: what follows is
	// text.
	r.state = tsText
	return true
}

// beginCall starts reading a call whose opener is at buffer offset at.
func (r *tagReader) beginCall(at int) {
	r.openEnd, r.bodyAt = at+len(r.open), at+len(r.open)
	if r.s.keepOpen {
		r.bodyAt = at
	}
	r.scanned, r.checked, r.retries, r.js, r.jsonEnd = r.bodyAt, 0, 0, jsonScan{}, -1
	r.state = tsCall
}

// call reads a call once it is complete. Only its first MaxCallBytes
// after the opener are looked at, so that what follows never changes the
// outcome, however the input was cut into deltas.
func (r *tagReader) call(p *Parser, end bool) bool {
	b := p.buf
	limit := min(len(b), r.openEnd+p.cfg.MaxCallBytes)
	full := len(b) > limit // the call ran past MaxCallBytes unless it ends in b[:limit]
	n, calls, err := r.s.endOfCall(r, b[:limit], end || full)
	switch {
	case err == nil && n > 0:
		r.done(p, calls, n)
		return true
	case err != nil:
		r.fail(p, err)
		return true
	case full:
		r.fail(p, fmt.Errorf("%w: %s: a call longer than %d bytes", ErrCallLimit, r.s.family, p.cfg.MaxCallBytes))
		return true
	case end:
		what := r.s.close
		if what == "" {
			what = "the end of its JSON"
		}
		r.fail(p, malformed(r.s.family, "cut off before %s", what))
		return true
	}
	if k := min(len(b)-r.bodyAt, startCheckBytes); k > r.checked && r.s.start != nil {
		r.checked = k
		pre := b[r.bodyAt : r.bodyAt+k]
		if r.bodyAt+k == len(b) {
			pre = pre[:len(pre)-partialSuffix(pre, toBytes(r.s.close))]
		}
		if !r.s.start(pre) {
			r.fail(p, malformed(r.s.family, "%q does not begin a call", b[r.bodyAt:r.bodyAt+k]))
			return true
		}
	}
	return false
}

// endOfCall looks for the end of the call being read in b: it returns the
// call's length in b and its calls, or 0 while it goes on; last says b
// will not grow.
func (s *tagSyntax) endOfCall(r *tagReader, b []byte, last bool) (int, []rawCall, error) {
	closer := []byte(s.close)
	if s.jsonBody {
		if r.jsonEnd < 0 {
			e, err := r.js.feed(b[r.bodyAt:])
			if err != nil {
				return 0, nil, malformed(s.family, "%v", err)
			}
			if e < 0 {
				return 0, nil, nil
			}
			r.jsonEnd = r.bodyAt + e
		}
		n := r.jsonEnd
		if len(closer) > 0 {
			after := b[n:]
			k := leadingSpace(after)
			switch {
			case bytes.HasPrefix(after[k:], closer):
				n += k + len(closer)
			case isPrefix(after[k:], closer) && !last:
				return 0, nil, nil
			default:
				return 0, nil, malformed(s.family, "%.40q after the call's JSON, want %s", after, s.close)
			}
		}
		calls, err := s.read(b[r.bodyAt:r.jsonEnd])
		return n, calls, err
	}
	for {
		from := max(r.bodyAt, r.scanned-len(closer)+1)
		j := bytes.Index(b[from:], closer)
		if j < 0 {
			r.scanned = len(b)
			return 0, nil, nil
		}
		j += from
		calls, err := s.read(b[r.bodyAt:j])
		if err != errMore {
			return j + len(closer), calls, err
		}
		if r.retries++; r.retries > maxCloseRetries {
			return 0, nil, malformed(s.family, "%s inside values more than %d times", s.close, maxCloseRetries)
		}
		r.scanned = j + len(closer)
	}
}

// done emits calls parsed from the first n bytes of the buffer.
func (r *tagReader) done(p *Parser, calls []rawCall, n int) {
	if !p.emitCalls(calls) {
		p.emitUncall(n, fmt.Errorf("%w: %s: more than %d calls", ErrCallLimit, r.s.family, p.cfg.MaxCalls))
		r.state, r.afterCall = tsText, false
		return
	}
	p.drop(n)
	r.called, r.afterCall = true, true
	switch {
	case r.s.sectionOpen != "":
		r.pos, r.sectionCalls, r.state = 0, true, tsSection
	case r.s.lead:
		r.state = tsLead
	default:
		r.state = tsText
	}
}

// fail returns what was held up to the failed opener as text, and reads
// on after it.
func (r *tagReader) fail(p *Parser, err error) {
	p.emitUncall(r.openEnd, err)
	r.state, r.afterCall = tsText, false
}

// jsonScan finds where a JSON object or array ends as its text streams in.
// It follows nesting and strings only; decoding checks the rest.
type jsonScan struct {
	n          int // bytes of b scanned
	depth      int
	inStr, esc bool
}

// feed scans b, the value's text so far (it grows between calls), and
// returns the length of the value with its leading space once it has
// closed, or -1.
func (s *jsonScan) feed(b []byte) (int, error) {
	for ; s.n < len(b); s.n++ {
		c := b[s.n]
		switch {
		case s.inStr:
			switch {
			case s.esc:
				s.esc = false
			case c == '\\':
				s.esc = true
			case c == '"':
				s.inStr = false
			}
		case s.depth == 0:
			if isSpace(c) {
				continue
			}
			if c != '{' && c != '[' {
				return -1, fmt.Errorf("%q where a JSON object or array should begin", c)
			}
			s.depth = 1
		case c == '"':
			s.inStr = true
		case c == '{' || c == '[':
			s.depth++
		case c == '}' || c == ']':
			if s.depth--; s.depth == 0 {
				s.n++
				return s.n, nil
			}
		}
	}
	return -1, nil
}

// trimSpace trims JSON whitespace.
func trimSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

// objectText returns b, trimmed, when it is one JSON object.
func objectText(b []byte) (string, error) {
	b = trimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return "", fmt.Errorf("arguments %.40q are not a JSON object", b)
	}
	if !json.Valid(b) {
		return "", fmt.Errorf("arguments %.40q are not valid JSON", b)
	}
	return string(b), nil
}

// argsText returns a call's arguments as a JSON object's text: an object,
// or a string holding one (as some models write it).
func argsText(raw json.RawMessage) (string, error) {
	raw = trimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		raw = []byte(s)
	}
	return objectText(raw)
}

// argsObject builds a JSON object from keys and values, in order; a value
// that is valid JSON is kept as it is, anything else becomes a string (as
// llama.cpp reads the XML-style formats, which write strings raw).
func argsObject(keys, values []string) string {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kj, _ := json.Marshal(k) // a string always marshals
		b.Write(kj)
		b.WriteByte(':')
		if v := trimSpace([]byte(values[i])); len(v) > 0 && json.Valid(v) {
			b.Write(v)
		} else {
			vj, _ := json.Marshal(values[i])
			b.Write(vj)
		}
	}
	b.WriteByte('}')
	return b.String()
}

// spaceThen reports whether prefix, after space, can still begin with m.
func spaceThen(prefix []byte, m string) bool {
	return mayBegin(prefix[leadingSpace(prefix):], m)
}

// nameThen reports whether prefix can still be a function name followed
// by one of seps, space allowed around the name (as the readers trim it).
func nameThen(prefix []byte, seps ...string) bool {
	b := prefix[leadingSpace(prefix):]
	i := 0
	for i < len(b) && b[i] > ' ' && b[i] != '<' && b[i] != '>' && b[i] != '"' && b[i] != '\'' {
		i++
	}
	if i > maxNameBytes {
		return false
	}
	rest := b[i:]
	rest = rest[leadingSpace(rest):]
	if len(rest) == 0 {
		return true
	}
	for _, sep := range seps {
		if i > 0 && mayBegin(rest, sep) {
			return true
		}
	}
	return false
}
