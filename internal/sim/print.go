package sim

import (
	"fmt"
	"io"
)

// Print writes rep for a reader.
func Print(w io.Writer, rep Report) {
	fmt.Fprintf(w, "shape          %d MoE layers × %d experts (%d units), top-%d, %d nodes, %d replica(s), %d redundant slots per layer\n",
		rep.Layers, rep.Experts, rep.Units, rep.TopK, rep.Nodes, rep.Replicas, rep.Redundant)
	settled := "settled"
	if !rep.Settled {
		settled = "NOT settled (raise --max-epochs)"
	}
	fmt.Fprintf(w, "controller     longest epoch %.1f ms (initial placement %.1f ms); %d epochs, %s\n", rep.EpochMS, rep.InitialMS, rep.Epochs, settled)
	where := "inline"
	if rep.PlacementShards > 0 {
		where = fmt.Sprintf("in %d shards + manifest", rep.PlacementShards)
	}
	fmt.Fprintf(w, "etcd           placement %s, %s; largest write %s of etcd's %s limit", size(rep.PlacementBytes), where, size(rep.MaxRequestBytes), size(rep.EtcdLimitBytes))
	if rep.EtcdPublished {
		fmt.Fprint(w, "; written to and read back from an embedded etcd")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "balance        node-load imbalance %.2f → %.2f (hot above %.2f, cool below %.2f); per layer %.2f → %.2f\n",
		rep.ImbalanceBefore, rep.ImbalanceAfter, rep.HotAbove, rep.CoolBelow, rep.LayerImbalanceBefore, rep.LayerImbalanceAfter)
	fmt.Fprintf(w, "moves          %d replicas added after the initial placement (at most %d per epoch), %d dropped; %d extra replicas\n",
		rep.Moves, rep.MaxEpochMoves, rep.Dropped, rep.ExtraReplicas)
	fmt.Fprintf(w, "decode         %d tokens per step in %d micro-batch(es), RTT %.2f ms: predicted %.0f tok/s, closed form %.0f tok/s (%.1f%% apart)\n",
		rep.Batch, rep.MicroBatches, rep.RTTms, rep.PredictedTokS, rep.ModelTokS, 100*rep.ModelError)
	fmt.Fprintf(w, "step           shared %.1f ms + experts %.1f ms + round trips %.1f ms; one stream's floor %.1f tok/s\n",
		rep.SharedMS, rep.ExpertMS, rep.NetMS, rep.FloorTokS)
}

func size(b int) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}
