package coordinator

import (
	"slices"

	"github.com/switchyard-llm/switchyard/pkg/chat"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// A chat reply is cut into typed parts (text, reasoning, tool calls) by a
// chat.Parser of the template's family, fed beside the stop matcher: each
// token's text goes through the stop matcher first, then the parser, so
// that stops, reasoning and calls are cut from one stream.

// harmonyCall is the token after which gpt-oss has made its call and waits
// for the result: generation ends there, as at end of sequence.
const harmonyCall = "<|call|>"

// replyParsing is how a chat request's choices read their replies: the
// parser's config (nil: the reply is plain text) and the tokens that end
// generation besides end of sequence.
type replyParsing struct {
	cfg *chat.ParserConfig
	end []int32
}

// parsing decides how the replies of a chat request, whose rendered prompt
// is prompt, are read: with a parser when the request offers tools (and
// tool_choice is not none), or when reasoning is split out, which every
// family but harmony and Mistral marks with <think>; harmony's analysis
// channel is reasoning too.
func (c *Coordinator) parsing(req *pb.GenerateRequest, prompt string) replyParsing {
	cfg := chat.ParserConfig{Family: c.family, ToolCalls: len(req.Tools) > 0 && req.ToolChoice != pb.ToolChoice_TOOL_CHOICE_NONE,
		InReasoning: chat.ThinkingOpen(prompt)}
	if req.KeepReasoning {
		cfg.Reasoning = chat.ReasoningNone
	}
	if !cfg.ToolCalls && cfg.Reasoning == chat.ReasoningNone {
		return replyParsing{}
	}
	p := replyParsing{cfg: &cfg}
	if id, ok := c.tok.Lookup(harmonyCall); ok && c.family == chat.FamilyHarmony && cfg.ToolCalls {
		p.end = []int32{id}
	}
	return p
}

// piece is the text of token id that the stop matcher and the parser see.
// A parsed reply sees control tokens' text too: the decoder drops it, and
// it is markup (<|channel|>, <｜tool▁calls▁begin｜>, …).
func (s *scheduler) piece(st *seqState, id int32) string {
	if st.parser != nil && s.tok.IsControl(id) {
		return st.dec.Flush() + s.tok.Token(id)
	}
	return st.dec.Next(id)
}

// ends reports whether token id ends generation as end of sequence does.
func (st *seqState) ends(id int32) bool { return slices.Contains(st.req.parse.end, id) }

// emit turns reply text the stop matcher let through into the reply's
// deltas.
func (st *seqState) emit(text string) []*pb.Delta {
	if st.parser == nil {
		if text == "" {
			return nil
		}
		return []*pb.Delta{{Delta: &pb.Delta_Text{Text: text}}}
	}
	out, _ := toDeltas(st.parser.Push(text), nil)
	return out
}

// end sends a reply's last event with the deltas of text, the last of its
// reply, and of what the parser held back. A reply that made tool calls
// and ended by itself (end of sequence, a stop string, gpt-oss's <|call|>)
// finishes with FINISH_REASON_TOOL_CALLS; one cut by max_tokens or the
// context stays LENGTH.
func (st *seqState) end(ev genEvent, text string) {
	ev.deltas, ev.stopSequence = st.emit(text), st.stop.Matched()
	if st.parser != nil {
		var calls int
		ev.deltas, calls = toDeltas(st.parser.Finish(), ev.deltas)
		if calls > 0 && ev.finish == pb.FinishReason_FINISH_REASON_STOP {
			ev.finish = pb.FinishReason_FINISH_REASON_TOOL_CALLS
		}
	}
	st.finish(ev)
}

// toDeltas appends ds to out as proto deltas, and returns the number of
// calls a finish delta among them reports.
func toDeltas(ds []chat.Delta, out []*pb.Delta) ([]*pb.Delta, int) {
	calls := 0
	for _, d := range ds {
		switch d.Kind {
		case chat.KindText:
			out = append(out, &pb.Delta{Delta: &pb.Delta_Text{Text: d.Text}})
		case chat.KindReasoning:
			out = append(out, &pb.Delta{Delta: &pb.Delta_Reasoning{Reasoning: d.Text}})
		case chat.KindCallStart:
			out = append(out, &pb.Delta{Delta: &pb.Delta_ToolCall{ToolCall: &pb.ToolCallStart{Index: uint32(d.Index), Id: d.ID, Name: d.Name}}})
		case chat.KindCallArgs:
			out = append(out, &pb.Delta{Delta: &pb.Delta_ToolCallArguments{ToolCallArguments: &pb.ToolCallArguments{Index: uint32(d.Index), Fragment: d.Text}}})
		case chat.KindFinish:
			calls = d.Calls
		}
	}
	return out, calls
}
