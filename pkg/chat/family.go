package chat

import (
	"fmt"
	"strings"
)

// Family is a chat-template family: how its models write tool calls and
// reasoning. Each has a file of its own (parse_<family>.go).
type Family uint8

const (
	// FamilyPlain is the plain template's: <think> reasoning, and calls as
	// bare JSON objects, {"name": …, "arguments": …}, where the reply begins.
	FamilyPlain Family = iota
	// FamilyHermes writes <tool_call>{"name": …, "arguments": …}</tool_call>
	// (Hermes 2 Pro, Qwen2.5, Qwen3).
	FamilyHermes
	// FamilyQwen3Coder writes <tool_call><function=NAME><parameter=P>…
	// </parameter></function></tool_call>.
	FamilyQwen3Coder
	// FamilyDeepSeek writes <｜tool▁calls▁begin｜> sections (DeepSeek-V3, R1,
	// V3.1).
	FamilyDeepSeek
	// FamilyKimiK2 writes <|tool_calls_section_begin|> sections.
	FamilyKimiK2
	// FamilyHarmony is gpt-oss's harmony format: channels, and calls as
	// messages to functions.NAME.
	FamilyHarmony
	// FamilyMistral writes [TOOL_CALLS][{…}] (Mistral Nemo).
	FamilyMistral
	// FamilyLlama3 answers with a call's bare JSON, {"name": …,
	// "parameters": …} (Llama 3.1–3.3).
	FamilyLlama3
	// FamilyGLM writes <tool_call>NAME<arg_key>…</arg_key><arg_value>…
	// </arg_value></tool_call> (GLM-4.5, 4.6).
	FamilyGLM
)

// family is what a Family reads, composed of shared blocks.
type family struct {
	name string
	// detect reports whether a template source is this family's (nil for
	// plain).
	detect func(src string) bool
	reader func(*Parser) reader
	// newID makes an ID for a call the model gave none (nil for plain).
	newID func() string
}

var families = [...]family{
	FamilyPlain:      plain,
	FamilyHermes:     hermes,
	FamilyQwen3Coder: qwen3Coder,
	FamilyDeepSeek:   deepseek,
	FamilyKimiK2:     kimiK2,
	FamilyHarmony:    harmony,
	FamilyMistral:    mistral,
	FamilyLlama3:     llama3,
	FamilyGLM:        glm,
}

// detectOrder is the order DetectFamily tries families in, most specific
// first: GLM and Qwen3-Coder templates hold <tool_call> too.
var detectOrder = []Family{FamilyHarmony, FamilyDeepSeek, FamilyKimiK2, FamilyGLM, FamilyQwen3Coder, FamilyHermes, FamilyMistral, FamilyLlama3}

// DetectFamily recognises a family from a chat template's source (the
// file's tokenizer.chat_template) by the markup it writes, as llama.cpp's
// common/chat.cpp does; FamilyPlain when none matches.
func DetectFamily(template string) Family {
	for _, f := range detectOrder {
		if families[f].detect(template) {
			return f
		}
	}
	return FamilyPlain
}

func (f Family) String() string {
	if int(f) < len(families) {
		return families[f].name
	}
	return fmt.Sprintf("Family(%d)", f)
}

// ThinkingOpen reports whether a rendered prompt ends inside an open
// <think> block, as DeepSeek-R1's and Qwen3-thinking's templates (and
// DeepSeek-V3.1's with thinking on) leave it: the reply then starts in
// reasoning (ParserConfig.InReasoning).
func ThinkingOpen(prompt string) bool {
	return strings.HasSuffix(strings.TrimRight(prompt, " \t\r\n"), "<think>")
}

// containsAll reports whether s holds every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

// openAIID is the shape of OpenAI's call IDs: call_ and 24 letters and
// digits.
func openAIID() string { return randomID("call_", 24) }

// plain is what DetectFamily falls back to, and the plain template's
// (chat.Plain) syntax: it renders a call as a JSON object on a line of its
// own, {"name": "f", "arguments": {…}}. A call is read where the content
// begins and after a call, as Llama 3's are; one after text stays text, so
// that prose with JSON in it is never taken for a call.
var plain = family{
	name: "plain",
	reader: tagged(&tagSyntax{
		family:   "plain",
		think:    true,
		open:     "{",
		keepOpen: true,
		jsonBody: true,
		lead:     true,
		read:     readBareCall("plain"),
	}),
	newID: openAIID,
}
