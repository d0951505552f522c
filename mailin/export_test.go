package mailin

// LoadPending exposes loadPending to the external tests.
var LoadPending = loadPending

// RawColumns is the column list of a full raw-mail read.
const RawColumns = rawColumns

// DrawRawIDs is the statement with which StoreRaws starts a COPY.
const DrawRawIDs = drawRawIDs

// SetMoveBatch makes a poller with o flag and move processed mail every n messages of a backlog.
func SetMoveBatch(o *PollerOptions, n int) { o.moveBatch = n }
