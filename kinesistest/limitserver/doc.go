// Package limitserver is an in-process Amazon Kinesis Data Streams endpoint
// that enforces the service's write limits, for unit tests, benchmarks and
// load tests of code that writes to Kinesis.
//
// It speaks the real Kinesis JSON 1.1 protocol over HTTP (POST /, header
// X-Amz-Target: Kinesis_20131202.<Operation>, JSON bodies with base64 blobs,
// errors as HTTP 400 with a "__type" body and an X-Amzn-ErrorType header), so
// the unmodified aws-sdk-go-v2 Kinesis client talks to it through
// kinesis.Options.BaseEndpoint. It accepts any request signature.
//
// It implements CreateStream, DeleteStream, DescribeStreamSummary,
// UpdateMaxRecordSize, ListShards, PutRecord, PutRecords, SplitShard,
// MergeShards, GetShardIterator and GetRecords, and models what the local
// engines (kinesis-mock, LocalStack) cannot show:
//
//   - per-shard token buckets of 1 MiB/s (data plus partition key bytes) and
//     1,000 records/s, each holding about one second of capacity, with
//     ProvisionedThroughputExceededException per entry in PutRecords and as
//     the error of PutRecord;
//   - the per-call limits of PutRecords (500 records, 5 MiB including
//     partition keys) and the record size limit (data plus partition key),
//     the partition key length (1 to 256 characters) and the explicit hash
//     key's form and range, each rejected with the error type the service
//     uses;
//   - large records: each stream has its own record size limit, 1 MiB unless
//     CreateStream's MaxRecordSizeInKiB or UpdateMaxRecordSize raise it (up
//     to 10 MiB), reported by DescribeStreamSummary as MaxRecordSizeInKiB.
//     A stream above 1 MiB takes PutRecords calls of up to 10 MiB, and its
//     shards' byte buckets hold 10 MiB (Options.LargeRecordBurst) while still
//     refilling at 1 MiB/s, the burst model of the KPL 1.0.6;
//   - routing by explicit hash key or MD5 of the partition key to the open
//     shard owning the hash range, with shards splitting the 128-bit hash key
//     space evenly as CreateStream does;
//   - resharding at once: SplitShard and MergeShards close their parents
//     (ListShards then shows them with an EndingSequenceNumber, the children
//     with ParentShardId and AdjacentParentShardId, and the filter AT_LATEST
//     shows only open shards), and GetRecords at the end of a closed shard
//     returns its ChildShards and no NextShardIterator.
//
// What the service documents about large records (checked in 2026): the
// PutRecords reference now reads "Each record in the request can be as large
// as 10 MiB, up to a limit of 10 MiB for the entire request, including
// partition keys" (the AWS SDK references of PutRecords), and the
// developer guide's "Handle large records" page says shard throughput stays
// 1 MiB/s for writes, that the stream "bursts up to 10 MiBs, while averaging
// out to 1 MiB per second", and that large records should stay under 2% of
// the traffic. The reference does not say whether a stream left at 1 MiB
// takes 10 MiB calls; this endpoint keeps 5 MiB for those, so that what
// passes here passes there.
//
// It counts what each shard accepts and throttles (see Server.Stats). It
// keeps record data only when Options.KeepData asks for it, and reading
// (GetShardIterator, GetRecords) needs it. Reads are not rate-limited, there
// is no retention, and streams are ACTIVE at once, also while resharding. It
// does not replace kinesis-mock in functional tests of a Kinesis engine.
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
