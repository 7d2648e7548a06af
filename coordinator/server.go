package coordinator

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// Limits on one request.
const (
	maxStops    = 16
	maxStopLen  = 1 << 10
	maxMessages = 1 << 10
)

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

// admit validates and tokenizes a request.
func (c *Coordinator) admit(ctx context.Context, req *pb.GenerateRequest) (*genRequest, string, error) {
	var prompt []int32
	var template string
	n := 0
	for _, set := range []bool{req.Prompt != "", len(req.PromptTokens) > 0, len(req.Messages) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, "", invalid("give exactly one of prompt, prompt_tokens and messages")
	}
	switch {
	case req.Prompt != "":
		prompt = c.tok.Encode(req.Prompt, true, false)
	case len(req.PromptTokens) > 0:
		for i, t := range req.PromptTokens {
			if t < 0 || int(t) >= c.model.Vocab {
				return nil, "", invalid("prompt token %d at position %d is outside the vocabulary of %d", t, i, c.model.Vocab)
			}
		}
		prompt = req.PromptTokens
	default:
		if c.tmpl == nil {
			return nil, "", status.Error(codes.FailedPrecondition, chat.ErrNoTemplate.Error())
		}
		if len(req.Messages) > maxMessages {
			return nil, "", invalid("%d messages (limit %d)", len(req.Messages), maxMessages)
		}
		msgs := make([]chat.Message, len(req.Messages))
		for i, m := range req.Messages {
			msgs[i] = chat.Message{Role: m.Role, Content: m.Content}
		}
		text, err := c.tmpl.Render(chat.Conversation{Messages: msgs, AddGenerationPrompt: true})
		if err != nil {
			return nil, "", invalid("%v", err)
		}
		prompt = c.tok.Encode(text, true, true)
		if len(prompt) > 1 && prompt[0] == c.tok.BOS && prompt[1] == c.tok.BOS {
			prompt = prompt[1:] // the template wrote BOS itself
		}
		template = c.tmpl.Name
	}
	if len(prompt) == 0 {
		return nil, "", invalid("the prompt is empty")
	}
	promptLen := len(prompt)
	for i, t := range req.ResumeTokens {
		if t < 0 || int(t) >= c.model.Vocab {
			return nil, "", invalid("resume token %d at %d is outside the vocabulary of %d", t, i, c.model.Vocab)
		}
	}
	prompt = append(slices.Clone(prompt), req.ResumeTokens...)
	ctxLen := c.model.Context
	if len(prompt) >= ctxLen {
		return nil, "", invalid("the prompt is %d tokens; it must be shorter than the context of %d tokens", len(prompt), ctxLen)
	}
	if len(req.Stop) > maxStops {
		return nil, "", invalid("%d stop strings (limit %d)", len(req.Stop), maxStops)
	}
	for _, s := range req.Stop {
		if len(s) > maxStopLen {
			return nil, "", invalid("stop string of %d bytes (limit %d)", len(s), maxStopLen)
		}
	}
	sp := req.Sampling
	if sp == nil {
		sp = &pb.SamplingParams{}
	}
	p := sampling.Params{Temperature: sp.Temperature, TopK: int(sp.TopK), TopP: sp.TopP, MinP: sp.MinP,
		RepeatPenalty: sp.RepetitionPenalty, PresencePenalty: sp.PresencePenalty, FrequencyPenalty: sp.FrequencyPenalty,
		PenaltyLastN: 64, Seed: sp.Seed, Logprobs: int(req.TopLogprobs), TokenLogprob: req.Logprobs}
	if p.TopP == 0 {
		p.TopP = 1
	}
	if p.RepeatPenalty == 0 {
		p.RepeatPenalty = 1
	}
	if len(sp.LogitBias) > 0 {
		p.LogitBias = map[int32]float32{}
		for t, b := range sp.LogitBias {
			p.LogitBias[t] = b
		}
	}
	s, err := sampling.New(p, c.model.Vocab)
	if err != nil {
		return nil, "", invalid("%v", err)
	}
	for _, t := range prompt {
		s.Accept(t)
	}
	s.Skip(len(req.ResumeTokens))
	maxTokens, reserve := ctxLen-len(prompt), 0
	if req.MaxTokens > 0 {
		maxTokens = min(maxTokens, int(req.MaxTokens))
		reserve = len(prompt) + maxTokens
	}
	return &genRequest{ctx: ctx, prompt: prompt, promptLen: promptLen, resumed: req.ResumeTokens, sampler: s,
		topLogprobs: int(req.TopLogprobs), maxTokens: maxTokens, reserve: reserve, stop: req.Stop, routing: req.ReturnRouting, noCache: req.NoPromptCache,
		events: make(chan genEvent, maxTokens+2)}, template, nil
}

// Generate streams one completion.
func (c *Coordinator) Generate(req *pb.GenerateRequest, stream pb.CoordinatorService_GenerateServer) error {
	ctx := stream.Context()
	r, template, err := c.admit(ctx, req)
	if err != nil {
		return err
	}
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	c.metrics.inFlight.Inc()
	defer c.metrics.inFlight.Dec()
	c.requests.Add(1)
	c.promptTokens.Add(int64(r.promptLen))
	c.metrics.tokens.WithLabelValues("prompt").Add(float64(r.promptLen))
	select {
	case c.sched.submit <- r:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	usage := &pb.Usage{PromptTokens: uint32(r.promptLen)}
	first := true
	for ev := range r.events {
		usage.CachedTokens = max(usage.CachedTokens, uint32(ev.cached))
		if ev.err != nil {
			if errors.Is(ev.err, errUnavailable) || errors.Is(ev.err, errQueueTimeout) {
				return status.Error(codes.Unavailable, ev.err.Error())
			}
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			if errors.Is(ev.err, errTooLarge) {
				return status.Error(codes.OutOfRange, ev.err.Error())
			}
			return status.Errorf(codes.Internal, "generate: %v", ev.err)
		}
		msg := &pb.GenerateResponse{Text: ev.text, FinishReason: ev.finish}
		if first {
			msg.ChatTemplate, first = template, false
		}
		if ev.sampled {
			usage.CompletionTokens++
			c.generated.Add(1)
			t := &pb.Token{Id: ev.token.Token, Logprob: ev.token.Logprob, Piece: c.tok.Piece(ev.token.Token)}
			for _, a := range ev.token.Top {
				t.Top = append(t.Top, &pb.TokenLogprob{Token: a.Token, Logprob: a.Logprob, Piece: c.tok.Piece(a.Token)})
			}
			t.Routing = toU32(ev.routing)
			msg.Tokens = []*pb.Token{t}
		}
		if ev.promptRouting != nil {
			msg.PromptRouting, msg.ExpertsPerToken = toU32(ev.promptRouting), uint32(c.model.ExpertsUsed)
		}
		if ev.finish != pb.FinishReason_FINISH_REASON_UNSPECIFIED {
			if ev.eos {
				usage.CompletionTokens++ // the end-of-sequence token counts as generated
			}
			msg.Usage = usage
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

func toU32(x []int32) []uint32 {
	if x == nil {
		return nil
	}
	out := make([]uint32, len(x))
	for i, v := range x {
		out[i] = uint32(v)
	}
	return out
}

// Stats reports load, counters and the routing counts of a window.
func (c *Coordinator) Stats(ctx context.Context, req *pb.StatsRequest) (*pb.StatsResponse, error) {
	if req.WindowSeconds > 300 {
		return nil, invalid("window of %d s: at most 300 (or 0 for since start)", req.WindowSeconds)
	}
	r := &pb.StatsResponse{CoordinatorId: c.cfg.ID, InFlight: uint32(c.inFlight.Load()), RequestsTotal: uint64(c.requests.Load()),
		TokensGeneratedTotal: uint64(c.generated.Load()), PromptTokensTotal: uint64(c.promptTokens.Load()),
		UptimeSeconds: time.Since(c.stats.Since()).Seconds()}
	r.SetCounts(c.stats.Window(time.Duration(req.WindowSeconds) * time.Second))
	if st := c.sched.stats.Load(); st != nil {
		r.KvCache = &pb.KVCacheStats{BlocksTotal: uint64(st.Blocks), BlocksUsed: uint64(st.Used), BlocksCached: uint64(st.Cached),
			BlockBytes: uint64(c.model.KV.BlockBytes()), PrefixLookupTokens: uint64(st.Lookups), PrefixHitTokens: uint64(st.Hits),
			Evictions: uint64(st.Evictions), Queue: uint32(st.Queue), Preemptions: uint64(st.Preemptions)}
	}
	for _, p := range c.stats.Series() {
		r.Series = append(r.Series, &pb.SeriesPoint{Unix: p.Unix, Generated: p.Generated})
	}
	return r, nil
}
