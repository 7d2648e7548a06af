package coordinator

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// memAvailable is the kernel's estimate of memory available for new
// work, in bytes (MemAvailable in /proc/meminfo); 8 GiB where it cannot
// be read.
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 8 << 30
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 8 << 30
}

var (
	kvBlocksDesc = prometheus.NewDesc("switchyard_coordinator_kv_blocks",
		"KV-cache blocks by state: used (held by sequences or the prefix cache), cached (held by the prefix cache), free (left in the budget).",
		[]string{"state"}, nil)
	kvBlockBytesDesc = prometheus.NewDesc("switchyard_coordinator_kv_block_bytes",
		"Bytes of one KV-cache block.", nil, nil)
	prefixTokensDesc = prometheus.NewDesc("switchyard_coordinator_prefix_cache_tokens_total",
		"Prompt tokens looked up in the prefix cache, and those served from it (hit).", []string{"result"}, nil)
	evictionsDesc = prometheus.NewDesc("switchyard_coordinator_prefix_cache_evictions_total",
		"Cached prefix blocks evicted to make room.", nil, nil)
	queueDesc = prometheus.NewDesc("switchyard_coordinator_queue_length",
		"Requests waiting for KV-cache room.", nil, nil)
	preemptionsDesc = prometheus.NewDesc("switchyard_coordinator_preemptions_total",
		"Sequences preempted (and recomputed later) for KV-cache room.", nil, nil)
)

// kvCollector reads the scheduler's last published KV-cache figures at
// scrape time.
type kvCollector struct {
	s          *scheduler
	blockBytes int
}

func (c *kvCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{kvBlocksDesc, kvBlockBytesDesc, prefixTokensDesc, evictionsDesc, queueDesc, preemptionsDesc} {
		ch <- d
	}
}

func (c *kvCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.stats.Load()
	if st == nil {
		st = &kvStats{}
	}
	ch <- prometheus.MustNewConstMetric(kvBlocksDesc, prometheus.GaugeValue, float64(st.Used), "used")
	ch <- prometheus.MustNewConstMetric(kvBlocksDesc, prometheus.GaugeValue, float64(st.Cached), "cached")
	if st.Blocks > 0 {
		ch <- prometheus.MustNewConstMetric(kvBlocksDesc, prometheus.GaugeValue, float64(st.Blocks-st.Used), "free")
	}
	ch <- prometheus.MustNewConstMetric(kvBlockBytesDesc, prometheus.GaugeValue, float64(c.blockBytes))
	ch <- prometheus.MustNewConstMetric(prefixTokensDesc, prometheus.CounterValue, float64(st.Lookups), "lookup")
	ch <- prometheus.MustNewConstMetric(prefixTokensDesc, prometheus.CounterValue, float64(st.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(evictionsDesc, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(st.Queue))
	ch <- prometheus.MustNewConstMetric(preemptionsDesc, prometheus.CounterValue, float64(st.Preemptions))
}
