package chat

import (
	"bytes"
	"strings"
)

// qwen3Coder: Qwen3-Coder's XML calls,
//
//	<tool_call>
//	<function=NAME>
//	<parameter=P>
//	VALUE
//	</parameter>
//	</function>
//	</tool_call>
//
// A value is written raw (strings) or as JSON (objects, arrays), and
// numbers as their text: one that parses as JSON is kept as JSON, as
// llama.cpp reads it.
var qwen3Coder = family{
	name: "qwen3-coder",
	detect: func(src string) bool {
		return containsAll(src, "<tool_call>", "<function=", "<parameter=")
	},
	reader: tagged(&tagSyntax{
		family: "qwen3-coder",
		think:  true,
		open:   "<tool_call>",
		close:  "</tool_call>",
		start:  func(b []byte) bool { return spaceThen(b, "<function=") },
		read:   readQwen3Coder,
	}),
	newID: openAIID,
}

func readQwen3Coder(body []byte) ([]rawCall, error) {
	b := trimSpace(body)
	b, ok := bytes.CutPrefix(b, []byte("<function="))
	if !ok {
		return nil, malformed("qwen3-coder", "call does not begin with <function=")
	}
	name, b, ok := bytes.Cut(b, []byte(">"))
	if !ok || !validName(string(name)) {
		return nil, malformed("qwen3-coder", "function name %.40q", name)
	}
	var keys, values []string
	for {
		b = trimSpace(b)
		if rest, ok := bytes.CutPrefix(b, []byte("</function>")); ok {
			if len(trimSpace(rest)) > 0 {
				return nil, malformed("qwen3-coder", "%.40q after </function>", trimSpace(rest))
			}
			return []rawCall{{name: string(name), args: argsObject(keys, values)}}, nil
		}
		rest, ok := bytes.CutPrefix(b, []byte("<parameter="))
		if !ok {
			return nil, malformed("qwen3-coder", "%.40q where <parameter= or </function> should be", b)
		}
		key, rest, ok := bytes.Cut(rest, []byte(">"))
		if !ok || len(key) == 0 {
			return nil, malformed("qwen3-coder", "parameter name %.40q", key)
		}
		value, rest, ok := bytes.Cut(rest, []byte("</parameter>"))
		if !ok {
			return nil, errMore // </tool_call> was inside a value
		}
		// The template writes "\n" around a value.
		v := strings.TrimPrefix(string(value), "\n")
		v = strings.TrimSuffix(v, "\n")
		keys, values = append(keys, string(key)), append(values, v)
		b = rest
	}
}
