// Package docs holds Switchyard's documentation, by topic. Its test runs
// every shell block of README.md and docs/*.md against a binary and a
// cluster it starts itself, and compares what the blocks print where the
// output is deterministic.
package docs
