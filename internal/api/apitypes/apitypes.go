// Package apitypes holds what crosses the wire of docpipe's HTTP API (docs/API.md):
// the request and response bodies, the RFC 9457 Problem every error answer carries,
// and the stable error codes clients branch on. It is a leaf, in the manner of River's
// rivertype: the server (internal/api) registers these types with huma, which reads
// their struct tags for the OpenAPI document, and a client (internal/client, the CLI)
// decodes into them without importing the server. The CLI prints them as its --json
// output whichever backend answers, so they are the one documented shape.
//
// Nothing here imports huma or the database: the tags are plain strings, and the one
// part of the schema derived at run time (the run vocabulary's enums) is set by the
// server when it builds the OpenAPI document.
package apitypes
