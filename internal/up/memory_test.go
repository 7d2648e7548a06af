package up

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/synth"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// procKB reads a field (VmRSS, VmHWM) of /proc/<pid>/status, in KiB.
func procKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestWeightsHeldOnce loads the medium Mixtral (Q8_0, 686 MB) in each role
// as its own process and holds each to what it keeps: an expert node's
// resident memory after load is at most 1.1 × its units' bytes + 64 MiB,
// the coordinator's 1.1 × the shared part + 64 MiB (no request has used
// the KV cache), and `model run`'s peak 1.1 × the file + 64 MiB. Before
// packed matrices dropped their source, a node held its units twice.
func TestWeightsHeldOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and loads a 686 MB model")
	}
	w, err := synth.New(synth.Config{Arch: "mixtral", Preset: "medium", DType: tensor.Q8_0, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "medium.gguf")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(fh); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	f, err := model.Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var routed, shared int64
	for _, ti := range f.Tensors {
		if model.IsRoutedExpert(ti.Name) {
			routed += int64(ti.Size)
		} else {
			shared += int64(ti.Size)
		}
	}
	f.Close()
	const slack = 64 << 10 // KiB
	bin := binary(t)

	c := start(t, Config{ModelPath: path, Processes: true, Binary: bin, ExpertNodes: 2})
	for i, p := range c.procs {
		rss := procKB(t, p.cmd.Process.Pid, "VmRSS")
		bound := int64(1.1*float64(routed/2)/1024) + slack
		t.Logf("expert node %d: VmRSS %d KiB, VmHWM %d KiB; holds %d KiB of units", i, rss, procKB(t, p.cmd.Process.Pid, "VmHWM"), routed/2/1024)
		if rss > bound {
			t.Errorf("expert node %d holds %d KiB resident, more than 1.1 × its units + 64 MiB = %d KiB", i, rss, bound)
		}
	}
	for _, p := range c.coords {
		rss := procKB(t, p.cmd.Process.Pid, "VmRSS")
		bound := int64(1.1*float64(shared)/1024) + slack
		t.Logf("coordinator: VmRSS %d KiB, VmHWM %d KiB; shared part %d KiB", rss, procKB(t, p.cmd.Process.Pid, "VmHWM"), shared/1024)
		if rss > bound {
			t.Errorf("coordinator holds %d KiB resident, more than 1.1 × the shared part + 64 MiB = %d KiB", rss, bound)
		}
	}

	run := exec.Command(bin, "model", "run", "--model", path, "--tokens", "1,2,3", "--max-tokens", "4")
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("model run: %v\n%s", err, out)
	}
	peak := run.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
	size := (routed + shared) / 1024
	t.Logf("model run: peak %d KiB for a %d KiB file", peak, size)
	if bound := int64(1.1*float64(size)) + slack; peak > bound {
		t.Errorf("model run peaks at %d KiB, more than 1.1 × the file + 64 MiB = %d KiB", peak, bound)
	}
}
