// Package bench holds the pipeline-level benchmarks of the producer, run by
// `make bench` (go test -bench . ./aggregation ./dedupe ./producer ./bench
// ./spool):
//
//   - BenchmarkPipeline: the whole producer (routing, aggregation, batching,
//     results) into an in-process client that only counts: the producer's own
//     cost per trade.
//   - BenchmarkLimitEndpoint: aggregated producer versus one PutRecord per
//     trade, both through the real AWS SDK client, against the in-process
//     limit-enforcing Kinesis endpoint (4 shards, the service's write
//     limits), in one run, with the ratio.
//
// The aggregation encoder's own benchmarks live with it in package
// aggregation (BenchmarkAggregate, BenchmarkDeaggregate). The README's
// Performance section records measured numbers and how to reproduce them;
// cmd/loadtest runs longer comparisons.
package bench
