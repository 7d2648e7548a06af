package sim

import (
	"math"

	"github.com/switchyard-llm/switchyard/pkg/placement"
)

// machine is the cost model of docs/performance.md: what one decode step
// costs the coordinator and each expert node.
type machine struct {
	cfg       Config
	unitBytes float64 // an expert's weights
	perLayer  float64 // seconds of shared work per layer per micro-batch pass
	rowBits   float64 // one activation row on the wire
	rtt       float64
}

func newMachine(cfg Config) machine {
	return machine{cfg: cfg,
		unitBytes: 3 * float64(cfg.Embd) * float64(cfg.ExpertFF) * cfg.BitsPerWeight / 8,
		perLayer:  float64(cfg.SharedBytes) / cfg.CoordBandwidth / float64(cfg.DenseLayers+cfg.Layers),
		rowBits:   float64(cfg.Embd*cfg.WireBytes) * 8,
		rtt:       cfg.RTT.Seconds(),
	}
}

// node is one expert node's time for a layer: the weights of the units it
// runs read once, and the rows it is sent and the rows it sends back.
func (m machine) node(units, rows, pairs float64) float64 {
	return units*m.unitBytes/m.cfg.NodeBandwidth + (rows+pairs)*m.rowBits/m.cfg.LinkRate
}

// step is a decode step's time from each MoE layer's expert time (the
// slowest node plus the round trip, for one micro-batch): with mb
// micro-batches in flight, a layer takes the longer of the coordinator's
// mb shared passes and one micro-batch's shared pass plus its experts.
func (m machine) step(mb int, expert []float64) float64 {
	a := m.perLayer
	t := float64(m.cfg.DenseLayers*mb) * a
	for _, te := range expert {
		t += max(float64(mb)*a, a+te)
	}
	return t
}

// predict routes sampled decode steps through placement pm as the
// dispatcher would (placement.Spread over each unit's replicas, one call
// per node per layer and micro-batch) and sets the predicted throughput,
// and sets the closed-form one from counts (the routing load measured,
// as /v1/routing/stats would give it).
func predict(cfg Config, rt *router, pm placement.Map, counts [][]float64, rep *Report) {
	m := newMachine(cfg)
	mb := cfg.MicroBatches
	nodeIdx := map[string]int{}
	reps := make([][][]int, cfg.Layers) // layer → expert → replica nodes
	for l := range cfg.Layers {
		reps[l] = make([][]int, cfg.Experts)
		for e := range cfg.Experts {
			for _, id := range pm.Units[placement.UnitKey(unitOf(cfg, l, e))] {
				n, ok := nodeIdx[id]
				if !ok {
					n = len(nodeIdx)
					nodeIdx[id] = n
				}
				reps[l][e] = append(reps[l][e], n)
			}
		}
	}
	nn := len(nodeIdx)
	units, rows, pairs := make([]float64, nn), make([]float64, nn), make([]float64, nn)
	active := make([]map[int]bool, nn)
	lastRow := make([]int, nn)
	for i := range active {
		active[i] = map[int]bool{}
	}
	var offset uint64
	var picks []int
	var total, expertSum float64
	expert := make([]float64, cfg.Layers)
	for range cfg.Steps {
		for l := range cfg.Layers {
			var te float64
			for i := range mb {
				b := cfg.Batch/mb + btoi(i < cfg.Batch%mb)
				clear(units)
				clear(rows)
				clear(pairs)
				for n := range active {
					clear(active[n])
					lastRow[n] = -1
				}
				offset++
				for row := range b {
					picks = rt.route(picks[:0], l)
					for _, e := range picks {
						on := reps[l][e]
						if len(on) == 0 {
							continue // unplaced: the dispatcher would wait for it
						}
						n := on[placement.Spread(offset, row, len(on))]
						pairs[n]++
						if lastRow[n] != row {
							lastRow[n] = row
							rows[n]++
						}
						if !active[n][e] {
							active[n][e] = true
							units[n]++
						}
					}
				}
				slowest := 0.0
				for n := range nn {
					slowest = max(slowest, m.node(units[n], rows[n], pairs[n]))
				}
				te += slowest / float64(mb)
			}
			expert[l] = te + m.rtt
			expertSum += te
		}
		total += m.step(mb, expert)
	}
	steps := float64(cfg.Steps)
	rep.PredictedTokS = float64(cfg.Batch) / (total / steps)
	rep.SharedMS = float64((cfg.DenseLayers+cfg.Layers)*mb) * m.perLayer * 1000
	rep.ExpertMS = expertSum / steps * 1000
	rep.NetMS = float64(cfg.Layers) * ms(cfg.RTT)

	rep.ModelTokS = float64(cfg.Batch) / closedForm(m, reps, nn, counts, cfg.Batch, mb, cfg.LoadTokens)
	rep.ModelError = math.Abs(rep.PredictedTokS-rep.ModelTokS) / rep.ModelTokS
	single := m
	single.rtt = 0
	r0 := closedForm(single, reps, nn, counts, 1, 1, cfg.LoadTokens)
	rep.FloorTokS = 1 / (r0 + float64(cfg.Layers)*cfg.RTT.Seconds())
}

// closedForm is the step time of docs/performance.md from expected values:
// a token picks unit u of a layer with probability p = its routed tokens
// over the tokens measured, and each of its r replicas serves p/r of the
// tokens; a node of a micro-batch of b tokens then runs E[units] =
// Σ (1 − (1 − p/r)^b) units, is sent E[rows] = b (1 − Π (1 − p/r)) rows and
// sends back E[pairs] = b Σ p/r. A layer's expert time is the slowest
// node's expected time plus the round trip.
func closedForm(m machine, reps [][][]int, nn int, counts [][]float64, batch, mb, tokens int) float64 {
	units, none, share := make([]float64, nn), make([]float64, nn), make([]float64, nn)
	expert := make([]float64, len(reps))
	b := float64(batch) / float64(mb)
	for l := range reps {
		clear(units)
		clear(share)
		for n := range none {
			none[n] = 1
		}
		for e, on := range reps[l] {
			if len(on) == 0 {
				continue
			}
			p := counts[l][e] / float64(tokens) / float64(len(on))
			for _, n := range on {
				units[n] += 1 - math.Pow(1-p, b)
				none[n] *= 1 - p
				share[n] += p
			}
		}
		slowest := 0.0
		for n := range nn {
			slowest = max(slowest, m.node(units[n], b*(1-none[n]), b*share[n]))
		}
		expert[l] = slowest + m.rtt
	}
	return m.step(mb, expert)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
