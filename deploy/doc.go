// Package deploy holds the container image, the compose file and the
// Grafana dashboard; its tests check the compose file's structure against
// the binary's commands (no container engine is needed).
package deploy
