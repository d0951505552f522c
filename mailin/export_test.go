package mailin

// LoadPending exposes loadPending to the external tests.
var LoadPending = loadPending
