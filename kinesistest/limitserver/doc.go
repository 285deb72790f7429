// Package limitserver is an in-process Amazon Kinesis Data Streams endpoint
// that enforces the service's write limits, for benchmarks and load tests.
//
// It speaks the real Kinesis JSON 1.1 protocol over HTTP (POST /, header
// X-Amz-Target: Kinesis_20131202.<Operation>, JSON bodies with base64 blobs,
// errors as HTTP 400 with a "__type" body and an X-Amzn-ErrorType header), so
// the unmodified aws-sdk-go-v2 Kinesis client talks to it through
// kinesis.Options.BaseEndpoint. It accepts any request signature.
//
// It implements CreateStream, DeleteStream, DescribeStreamSummary, ListShards,
// PutRecord and PutRecords, and models what the local engines (kinesis-mock,
// LocalStack) cannot show:
//
//   - per-shard token buckets of 1 MiB/s (data plus partition key bytes) and
//     1,000 records/s, each holding about one second of capacity, with
//     ProvisionedThroughputExceededException per entry in PutRecords and as
//     the error of PutRecord;
//   - the per-call limits of PutRecords (500 records, 5 MiB including
//     partition keys) and the 1 MiB limit of one record (data plus partition
//     key), the partition key length (1 to 256 characters) and the explicit
//     hash key's form and range, each rejected with the error type the service
//     uses;
//   - routing by explicit hash key or MD5 of the partition key to the shard
//     owning the hash range, with shards splitting the 128-bit hash key space
//     evenly as CreateStream does.
//
// It counts what each shard accepts and throttles (see Server.Stats) and keeps
// no data unless Options.KeepData asks for it. It is a load-test instrument,
// not a Kinesis engine: it has no GetRecords, resharding or retention, and it
// does not replace kinesis-mock in functional tests, which must run against
// the real engine.
//
// Typical use in a benchmark:
//
//	srv := limitserver.New(limitserver.Options{})
//	if err := srv.CreateStream("trades", 4); err != nil { ... }
//	ts := httptest.NewServer(srv.Handler())
//	defer ts.Close()
//	client := kinesis.NewFromConfig(aws.Config{
//		Region:      "us-east-1",
//		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
//	}, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(ts.URL) })
//	... // PutRecords through client
//	st, _ := srv.Stats("trades")
package limitserver
