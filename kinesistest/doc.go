// Package kinesistest is a test kit for code that writes to Amazon Kinesis
// Data Streams, with or without this module's producer.
//
// This package holds two pieces for unit and integration tests:
//
//   - Client, a scriptable in-memory fake of the calls a producer makes
//     (PutRecords, ListShards, DescribeStreamSummary), with per-entry
//     failures, throttling, latency and records landing on another shard
//     than the one their hash key routes to;
//   - Check, a stream checker that reads a whole stream back (every shard,
//     parents before children), deaggregates what it reads and reports, per
//     key, the records lost, duplicated, misrouted and out of order.
//
// Its sub-packages hold the servers:
//
//   - limitserver, an in-process Kinesis endpoint that enforces the
//     service's write limits (throughput per shard, request and record
//     sizes, large records), reshards and reads back;
//   - faultinject, an http.RoundTripper and reverse proxy that inject the
//     service's faults (per-entry throttling and InternalFailure that really
//     leave the entries unstored, 500/503, connection resets before or after
//     forwarding, latency, outages) in front of any Kinesis endpoint; the
//     command cmd/faultproxy runs it as a standalone process;
//   - kinesismock, a launcher for kinesis-mock (the engine inside
//     LocalStack) for integration tests.
//
// Everything here talks the real protocol or the real SDK types, so the code
// under test needs no test hooks: point its *kinesis.Client at the server's
// URL, or give it the fake Client where it takes an interface.
package kinesistest
