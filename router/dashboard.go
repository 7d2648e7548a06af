package router

import _ "embed"

// dashboardHTML is the self-contained routing dashboard (no external
// scripts, styles or fonts: it works offline).
//
//go:embed dashboard/index.html
var dashboardHTML []byte
