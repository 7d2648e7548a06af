package main

import (
	"strings"
	"testing"
)

// TestHelp: help is asked for in two ways, printed on stdout and answered
// with exit 0; a group without a subcommand lists its commands (exit 2);
// a usage error prints the usage on stderr (exit 1).
func TestHelp(t *testing.T) {
	bin := binary(t)
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // each must appear on stdout
		stderr   []string // each must appear on stderr
		noStdout bool
	}{
		{"help up", []string{"help", "up"}, 0, []string{"usage: switchyard up [flags]", "a whole cluster in one process", "-expert-nodes", "-cache-dir"}, nil, false},
		{"up --help", []string{"up", "--help"}, 0, []string{"usage: switchyard up [flags]", "-expert-nodes"}, nil, false},
		{"up -h", []string{"up", "-h"}, 0, []string{"usage: switchyard up [flags]"}, nil, false},
		{"help expert-node", []string{"help", "expert-node"}, 0, []string{"-drain-timeout", "-gossip-key-file"}, nil, false},
		{"help router", []string{"help", "router"}, 0, []string{"-shutdown-grace"}, nil, false},
		{"help model inspect", []string{"help", "model", "inspect"}, 0, []string{"usage: switchyard model inspect FILE", "-tensor"}, nil, false},
		{"model inspect --help", []string{"model", "inspect", "--help"}, 0, []string{"usage: switchyard model inspect FILE"}, nil, false},
		{"help model", []string{"help", "model"}, 0, []string{"usage: switchyard model <command>", "synth", "inspect", "split", "tokenize", "logits", "run", "chat-template"}, nil, false},
		{"model --help", []string{"model", "--help"}, 0, []string{"usage: switchyard model <command>", "tokenize"}, nil, false},
		{"help model chat-template", []string{"help", "model", "chat-template"}, 0, []string{"usage: switchyard model chat-template --model FILE --request REQ.json", "-chat-template"}, nil, false},
		{"help placement plan", []string{"help", "placement", "plan"}, 0, []string{"usage: switchyard placement plan --model FILE|URL --nodes N --node-memory SIZE", "-coordinator-memory"}, nil, false},
		{"help placement drain", []string{"help", "placement", "drain"}, 0, []string{"usage: switchyard placement drain NODE"}, nil, false},
		{"help sim", []string{"help", "sim"}, 0, []string{"usage: switchyard sim [flags]", "-redundant", "-routing-stats"}, nil, false},
		{"help", []string{"help"}, 0, []string{"usage: switchyard <command>", "expert-node", "placement"}, nil, false},
		{"model alone", []string{"model"}, 2, nil, []string{"usage: switchyard model <command>", "synth", "run", "switchyard help model <command>"}, true},
		{"no command", nil, 2, nil, []string{"usage: switchyard <command>", "up"}, true},
		{"unknown flag", []string{"up", "--bogus"}, 1, nil, []string{"flag provided but not defined: -bogus", "usage: switchyard up [flags]"}, true},
		{"unknown subcommand", []string{"model", "nope"}, 1, nil, []string{`unknown command "model nope" (run 'switchyard help model')`}, true},
		{"help for nothing", []string{"help", "nope"}, 1, nil, []string{`unknown command "nope"`}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := run(t, bin, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out, errOut)
			}
			for _, w := range c.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if c.noStdout && out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}
