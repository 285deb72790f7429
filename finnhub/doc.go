// Package finnhub speaks Finnhub's trade websocket protocol: message types and a
// strict parser (ParseMessage), a reconnecting client (Client) and URL token
// redaction (RedactURL).
//
// The protocol: connect to wss://ws.finnhub.io?token=KEY, send
// {"type":"subscribe","symbol":"AAPL"} per symbol, then read messages:
//
//	{"type":"trade","data":[{"s":"AAPL","p":189.5,"t":1575526691134,"v":100,"c":["1","12"]}]}
//	{"type":"ping"}
//	{"type":"error","msg":"..."}
//
// Subscriptions die with the connection; the Client resubscribes after every
// reconnect. The API key travels in the URL query and is never written to a log
// line or an error by this package.
//
// The subpackage feedsim is a Finnhub-protocol simulator for tests and local runs.
package finnhub
