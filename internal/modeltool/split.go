package modeltool

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// Split writes the GGUF file in (itself whole or split) as n parts named
// <prefix>-00001-of-0000n.gguf and so on, laid out as llama.cpp's
// gguf-split writes them (see gguf.File.Split), and prints each part's
// name, tensors and bytes to out. If a part cannot be written, the parts
// already written are removed.
func Split(ctx context.Context, in, prefix string, n int, out io.Writer) error {
	f, err := gguf.Open(in, gguf.Options{Mmap: true})
	if err != nil {
		return fmt.Errorf("split: %w", err)
	}
	defer f.Close()
	ws, err := f.Split(n)
	if err != nil {
		return fmt.Errorf("split: %w", err)
	}
	for i, w := range ws {
		path := gguf.PartName(prefix, i, n)
		size, err := writeFile(ctx, path, w, nil)
		if err != nil {
			for j := range i {
				os.Remove(gguf.PartName(prefix, j, n))
			}
			return fmt.Errorf("split: part %d of %d: %w", i+1, n, err)
		}
		fmt.Fprintf(out, "%s\t%d tensors\t%d bytes\n", path, len(w.Tensors), size)
	}
	return nil
}
