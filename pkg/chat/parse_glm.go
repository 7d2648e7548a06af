package chat

import "bytes"

// glm: GLM-4.5 and 4.6,
//
//	<tool_call>NAME
//	<arg_key>K</arg_key>
//	<arg_value>V</arg_value>
//	</tool_call>
//
// A value is written raw when a string, else as JSON: one that parses as
// JSON is kept as JSON, as llama.cpp reads it.
var glm = family{
	name:   "glm",
	detect: func(src string) bool { return containsAll(src, "<tool_call>", "<arg_key>", "<arg_value>") },
	reader: tagged(&tagSyntax{
		family: "glm",
		think:  true,
		open:   "<tool_call>",
		close:  "</tool_call>",
		start:  func(b []byte) bool { return nameThen(b, "<arg_key>") },
		read:   readGLM,
	}),
	newID: openAIID,
}

func readGLM(body []byte) ([]rawCall, error) {
	b := trimSpace(body)
	i := bytes.IndexAny(b, "\n<")
	if i < 0 {
		i = len(b)
	}
	name := string(trimSpace(b[:i]))
	if !validName(name) {
		return nil, malformed("glm", "function name %.40q", name)
	}
	b = b[i:]
	var keys, values []string
	for {
		b = trimSpace(b)
		if len(b) == 0 {
			return []rawCall{{name: name, args: argsObject(keys, values)}}, nil
		}
		rest, ok := bytes.CutPrefix(b, []byte("<arg_key>"))
		if !ok {
			return nil, malformed("glm", "%.40q where <arg_key> should be", b)
		}
		key, rest, ok := bytes.Cut(rest, []byte("</arg_key>"))
		if !ok {
			return nil, errMore // </tool_call> was inside a key
		}
		rest = trimSpace(rest)
		rest, ok = bytes.CutPrefix(rest, []byte("<arg_value>"))
		if !ok {
			return nil, malformed("glm", "%.40q where <arg_value> should be", rest)
		}
		value, rest, ok := bytes.Cut(rest, []byte("</arg_value>"))
		if !ok {
			return nil, errMore // </tool_call> was inside a value
		}
		keys, values = append(keys, string(trimSpace(key))), append(values, string(value))
		b = rest
	}
}
