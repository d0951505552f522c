// Package configs holds deskd's example configuration. Its test loads every
// example through internal/config, so that an example never documents a key
// that does not exist or fails validation.
package configs

import _ "embed"

// Example is deskd.example.yaml, for commands that print a starting
// configuration.
//
//go:embed deskd.example.yaml
var Example []byte
