package chat

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// harmony: gpt-oss writes messages, each a header and a body. The prompt
// ends with <|start|>assistant, so the reply begins inside the first
// header:
//
//	<|channel|>analysis<|message|>REASONING<|end|>
//	<|start|>assistant<|channel|>final<|message|>TEXT<|return|>
//	<|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>{…}<|call|>
//
// The recipient (to=functions.NAME) may also follow the channel, and the
// content type may be written <|constrain|>json. The analysis channel is
// reasoning, final and commentary (without a recipient) are text, a
// message to functions.NAME is a call.
var harmony = family{
	name:   "harmony",
	detect: func(src string) bool { return strings.Contains(src, hChannel) },
	reader: func(p *Parser) reader {
		return &harmonyReader{ends: toBytes(hEnd, hReturn, hCall, hStart), starts: toBytes(hStart)}
	},
	newID: openAIID,
}

const (
	hStart     = "<|start|>"
	hChannel   = "<|channel|>"
	hMessage   = "<|message|>"
	hConstrain = "<|constrain|>"
	hEnd       = "<|end|>"
	hReturn    = "<|return|>"
	hCall      = "<|call|>"
	// maxHeaderBytes bounds a header held back until <|message|>.
	maxHeaderBytes = 512
)

// errNotHeader marks a header that is not a message of the assistant's
// (its text goes out as text, as it is).
var errNotHeader = errors.New("not a harmony message header")

type harmonyState uint8

const (
	hsHeader  harmonyState = iota // a header, up to <|message|>
	hsBody                        // a message's body
	hsBetween                     // outside messages: text until <|start|>
)

type msgKind uint8

const (
	mkText      msgKind = iota // final, commentary
	mkReasoning                // analysis
	mkCall                     // to=functions.NAME
	mkRaw                      // all of it is text, markup included
)

type harmonyReader struct {
	state harmonyState
	kind  msgKind
	name  string // a call's function
	// A call is held whole, header included: its body begins at bodyAt,
	// and scanned says how far its end was looked for.
	bodyAt, scanned int
	checked         bool // a call's body began as JSON
	ends, starts    [][]byte
}

func (r *harmonyReader) read(p *Parser, end bool) {
	for {
		var more bool
		switch r.state {
		case hsHeader:
			more = r.header(p, end)
		case hsBody:
			if r.kind == mkCall {
				more = r.call(p, end)
			} else {
				more = r.body(p, end)
			}
		case hsBetween:
			more = r.between(p, end)
		}
		if !more {
			return
		}
	}
}

func (r *harmonyReader) header(p *Parser, end bool) bool {
	// Only the first maxHeaderBytes are looked at, and a header is judged
	// by the same test however the input was cut into deltas.
	b := p.buf[:min(len(p.buf), maxHeaderBytes)]
	j := bytes.Index(b, []byte(hMessage))
	h := b
	if j >= 0 {
		h = b[:j]
	}
	if !headerPrefix(h, j >= 0) || j < 0 && (end || len(p.buf) > maxHeaderBytes) {
		// Not a header: text, from past its <|start|>.
		n := 0
		if bytes.HasPrefix(p.buf, []byte(hStart)) {
			n = len(hStart)
		}
		p.emit(KindText, n)
		r.state = hsBetween
		return true
	}
	if j < 0 {
		return false
	}
	n := j + len(hMessage)
	kind, name, err := parseHeader(p.buf[:j])
	switch {
	case err != nil:
		if errors.Is(err, ErrMalformedCall) {
			p.emitUncall(n, err)
		} else {
			p.emit(KindText, n)
		}
		r.state = hsBetween
		return true
	case kind == mkCall && !p.cfg.ToolCalls, kind == mkReasoning && !p.splitReasoning():
		kind = mkRaw
	}
	r.kind, r.name, r.state = kind, name, hsBody
	switch kind {
	case mkCall:
		r.bodyAt, r.scanned, r.checked = n, n, false
	case mkRaw:
		p.emit(KindText, n)
	default:
		p.drop(n)
	}
	return true
}

// headerPrefix reports whether b can be a header, or still become one
// unless complete: after an optional <|start|>assistant, " to=…" or
// <|channel|>, then header words.
func headerPrefix(b []byte, complete bool) bool {
	for _, m := range []string{hStart, "assistant"} {
		if bytes.HasPrefix(b, []byte(m)) {
			b = b[len(m):]
		} else if isPrefix(b, []byte(m)) {
			return !complete
		}
	}
	if len(b) > 0 && !mayBegin(b, " to=") && !mayBegin(b, hChannel) {
		return false
	}
	for len(b) > 0 {
		switch {
		case bytes.HasPrefix(b, []byte(hChannel)):
			b = b[len(hChannel):]
		case bytes.HasPrefix(b, []byte(hConstrain)):
			b = b[len(hConstrain):]
		case !complete && (isPrefix(b, []byte(hChannel)) || isPrefix(b, []byte(hConstrain)) || isPrefix(b, []byte(hMessage))):
			return true
		case headerByte(b[0]):
			b = b[1:]
		default:
			return false
		}
	}
	return true
}

func headerByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.=:/ -", c) >= 0
}

// parseHeader reads a header: the message's kind and, for a call, the
// function.
func parseHeader(h []byte) (msgKind, string, error) {
	s := strings.TrimPrefix(string(h), hStart)
	s = strings.TrimPrefix(s, "assistant")
	s = strings.ReplaceAll(s, hConstrain, " ")
	// A header that names a recipient is a call, or a malformed one.
	notHeader := errNotHeader
	if strings.Contains(s, "to=") {
		notHeader = malformed("harmony", "header %.60q", s)
	}
	pre, post, ok := strings.Cut(s, hChannel)
	if !ok || strings.Contains(pre, "<|") || strings.Contains(post, "<|") {
		return 0, "", notHeader
	}
	var to string
	for _, f := range strings.Fields(pre) {
		if !strings.HasPrefix(f, "to=") || to != "" {
			return 0, "", notHeader
		}
		to = f[len("to="):]
	}
	fields := strings.Fields(post)
	if len(fields) == 0 {
		return 0, "", notHeader
	}
	channel, typed := fields[0], false
	for _, f := range fields[1:] {
		switch {
		case strings.HasPrefix(f, "to=") && to == "":
			to = f[len("to="):]
		case !typed && !strings.Contains(f, "="):
			typed = true // the content type: json
		default:
			return 0, "", notHeader
		}
	}
	if to != "" {
		name, ok := strings.CutPrefix(to, "functions.")
		switch {
		case !ok:
			return 0, "", malformed("harmony", "recipient %.40q is not one of functions", to)
		case !validName(name):
			return 0, "", malformed("harmony", "function name %.40q", name)
		case channel != "commentary" && channel != "analysis":
			return 0, "", malformed("harmony", "call to %s on channel %.20q", name, channel)
		}
		return mkCall, name, nil
	}
	switch channel {
	case "analysis":
		return mkReasoning, "", nil
	case "final", "commentary":
		return mkText, "", nil
	}
	return 0, "", fmt.Errorf("%w: channel %.20q", errNotHeader, channel)
}

// body streams a text or reasoning body to its end.
func (r *harmonyReader) body(p *Parser, end bool) bool {
	k := KindText
	if r.kind == mkReasoning {
		k = KindReasoning
	}
	at := firstMarker(p.buf, r.ends)
	if at < 0 {
		n := len(p.buf)
		if !end {
			n = emittable(p.buf, r.ends, false)
		}
		p.emit(k, n)
		return false
	}
	p.emit(k, at)
	r.endMessage(p)
	return true
}

// endMessage reads the end of a message at the start of the buffer: a
// <|start|> begins the next one.
func (r *harmonyReader) endMessage(p *Parser) {
	if bytes.HasPrefix(p.buf, []byte(hStart)) {
		r.state = hsHeader
		return
	}
	for _, m := range r.ends {
		if bytes.HasPrefix(p.buf, m) {
			if r.kind == mkRaw {
				p.emit(KindText, len(m))
			} else {
				p.drop(len(m))
			}
			break
		}
	}
	r.state = hsBetween
}

// call holds a call message until its end, then emits it or returns it as
// text. Only the first MaxCallBytes of its body are looked at.
func (r *harmonyReader) call(p *Parser, end bool) bool {
	b := p.buf[:min(len(p.buf), r.bodyAt+p.cfg.MaxCallBytes)]
	from := max(r.bodyAt, r.scanned-len(hReturn)+1) // <|return|> is the longest end
	at := firstMarker(b[from:], r.ends)
	if at >= 0 {
		at += from
	} else {
		r.scanned = len(b)
		switch {
		case len(p.buf) > len(b):
			r.uncall(p, len(b), fmt.Errorf("%w: harmony: a call longer than %d bytes", ErrCallLimit, p.cfg.MaxCallBytes))
			return true
		case end:
			at = len(b) // the end of generation ends it (<|call|> stops gpt-oss)
		default:
			if !r.checked && len(trimSpace(b[r.bodyAt:])) > 0 {
				if !spaceThen(b[r.bodyAt:], "{") {
					r.uncall(p, len(b), malformed("harmony", "call to %s: arguments are not a JSON object", r.name))
					return true
				}
				r.checked = true
			}
			return false
		}
	}
	args, err := objectText(b[r.bodyAt:at])
	if err != nil {
		r.uncall(p, at, malformed("harmony", "call to %s: %v", r.name, err))
		return true
	}
	if !p.emitCalls([]rawCall{{name: r.name, args: args}}) {
		r.uncall(p, at, fmt.Errorf("%w: harmony: more than %d calls", ErrCallLimit, p.cfg.MaxCalls))
		return true
	}
	p.drop(at)
	r.endMessage(p)
	return true
}

// uncall returns the first n bytes of a call message as text; the rest of
// the message follows as text.
func (r *harmonyReader) uncall(p *Parser, n int, err error) {
	p.emitUncall(n, err)
	r.kind = mkRaw
}

// between emits text outside messages until a <|start|>.
func (r *harmonyReader) between(p *Parser, end bool) bool {
	at := firstMarker(p.buf, r.starts)
	if at < 0 {
		n := len(p.buf)
		if !end {
			n = emittable(p.buf, r.starts, false)
		}
		p.emit(KindText, n)
		return false
	}
	p.emit(KindText, at)
	r.state = hsHeader
	return true
}
