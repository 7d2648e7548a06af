package netbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/switchyard-llm/switchyard/internal/bench"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/routingstats"
)

// MeasureConfig is a bench over namespaced clusters: for every node
// count, a cluster, and on it every round trip in turn, each concurrency.
type MeasureConfig struct {
	Cluster                         Config // ExpertNodes is taken from Nodes
	Nodes                           []int
	RTTs                            []time.Duration
	Concurrency                     []int
	PromptTokens, GenTokens, Rounds int
}

// Measure runs the bench and returns its runs, each with its round trip,
// node count and bytes on the wire.
func Measure(ctx context.Context, mc MeasureConfig) (*bench.Report, error) {
	f, err := model.Open(mc.Cluster.ModelPath, gguf.Options{})
	if err != nil {
		return nil, err
	}
	moeLayers := len(f.MoELayers())
	f.Close()
	var out *bench.Report
	for _, n := range mc.Nodes {
		cfg := mc.Cluster
		cfg.ExpertNodes = n
		c, err := Start(ctx, cfg)
		if err != nil {
			return nil, err
		}
		r0 := 0.0 // the 0 ms single-stream rate, for the floor
		for _, rtt := range mc.RTTs {
			if err := c.SetRTT(rtt); err != nil {
				c.Close()
				return nil, err
			}
			for _, conc := range mc.Concurrency {
				before, err := wireBytes(ctx, c.URL)
				if err != nil {
					c.Close()
					return nil, err
				}
				rep, err := bench.Measure(ctx, bench.Config{ModelPath: cfg.ModelPath, URL: c.URL, Modes: []string{"cluster"},
					Concurrency: []int{conc}, PromptTokens: mc.PromptTokens, GenTokens: mc.GenTokens, Rounds: mc.Rounds})
				if err != nil {
					c.Close()
					return nil, fmt.Errorf("netbench: %d nodes, RTT %v, %d streams: %w", n, rtt, conc, err)
				}
				after, err := wireBytes(ctx, c.URL)
				if err != nil {
					c.Close()
					return nil, err
				}
				if out == nil {
					out = &bench.Report{Model: rep.Model}
				}
				for _, r := range rep.Runs {
					ms := float64(rtt.Microseconds()) / 1000
					r.RTTms, r.Delay, r.ExpertNodes = &ms, c.Delay, n
					if gen := after.generated - before.generated; gen > 0 {
						r.WireBytesPerTokenNode = float64(after.bytes-before.bytes) / float64(gen) / float64(n)
					}
					if conc == 1 {
						if rtt == 0 {
							r0 = r.DecodeTokS
						}
						if r0 > 0 {
							r.FloorTokS = 1 / (1/r0 + float64(moeLayers)*rtt.Seconds())
						}
					}
					out.Runs = append(out.Runs, r)
				}
			}
		}
		if err := c.Close(); err != nil {
			return nil, err
		}
	}
	if out == nil {
		return nil, fmt.Errorf("netbench: nothing measured")
	}
	return out, nil
}

type wire struct{ bytes, generated uint64 }

// wireBytes reads, from the router's routing statistics, the activation
// bytes sent to and received from the nodes and the tokens generated.
func wireBytes(ctx context.Context, url string) (wire, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/routing/stats?window=all", nil)
	if err != nil {
		return wire{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return wire{}, fmt.Errorf("netbench: routing stats: %w", err)
	}
	defer resp.Body.Close()
	var rep routingstats.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return wire{}, fmt.Errorf("netbench: routing stats: %w", err)
	}
	w := wire{generated: rep.Totals.Generated}
	for _, n := range rep.Nodes {
		w.bytes += n.BytesSent + n.BytesReceived
	}
	return w, nil
}

// Print writes the runs as a table.
func Print(w io.Writer, rep *bench.Report) {
	fmt.Fprintf(w, "%5s %7s %-9s %5s %11s %9s %9s %8s %8s %12s %10s\n", "nodes", "RTT ms", "delay", "conc", "decode t/s", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "wire B/tok/n", "floor t/s")
	for _, r := range rep.Runs {
		rtt := 0.0
		if r.RTTms != nil {
			rtt = *r.RTTms
		}
		floor := ""
		if r.FloorTokS > 0 {
			floor = fmt.Sprintf("%.1f", r.FloorTokS)
		}
		fmt.Fprintf(w, "%5d %7.2f %-9s %5d %11.1f %9.1f %9.1f %8.2f %8.2f %12.0f %10s\n", r.ExpertNodes, rtt, r.Delay, r.Concurrency, r.DecodeTokS,
			r.TTFTp50, r.TTFTp99, r.ITLp50, r.ITLp99, r.WireBytesPerTokenNode, floor)
	}
	fmt.Fprintln(w, "(times in ms; the floor is one stream's bound 1 / (1/r₀ + MoE layers × RTT))")
}
