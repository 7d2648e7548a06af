#!/usr/bin/env bash
# Regenerates the Go code beside the protos with pinned local plugins, after
# linting them. CI runs this and fails if the tree changed.
set -euo pipefail
cd "$(dirname "$0")/.."
gobin="$(go env GOPATH)/bin"
GOFLAGS= go install github.com/bufbuild/buf/cmd/buf@v1.75.0
GOFLAGS= go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOFLAGS= go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
export PATH="$gobin:$PATH"
buf lint
buf generate
