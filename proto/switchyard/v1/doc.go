// Package switchyardv1 is the gRPC API between Switchyard's roles:
// ExpertService (coordinator → expert node) and CoordinatorService (router →
// coordinator), generated from the .proto files beside it by
// proto/generate.sh, plus what the generated code does not give: the
// activation row encodings (f32, f16, bf16), the message limits and
// flow-control windows every role dials and serves with, a codec that
// decodes ForwardStream messages into reused buffers, and the conversion
// of routing counts to and from their messages.
package switchyardv1
