package router

import (
	_ "embed"
	"html/template"
)

// dashboardHTML is the self-contained routing dashboard (no external
// scripts, styles or fonts: it works offline).
//
//go:embed dashboard/index.html
var dashboardHTML []byte

// signInPage asks for an API key when the router requires one; .Error
// says why the last try failed.
//
//go:embed dashboard/signin.html
var signInHTML string

var signInPage = template.Must(template.New("signin").Parse(signInHTML))
