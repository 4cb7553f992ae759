// Package openapi embeds the OpenAPI v2 document that `make generate` writes
// beside this file from proto/ (protoc-gen-openapiv2). This file is not
// generated; the JSON is.
package openapi

import _ "embed"

// Document is the OpenAPI v2 (Swagger) description of the REST API.
//
//go:embed corvid.swagger.json
var Document []byte
