package producer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
)

// StreamSummaryAPI is the optional part of the Kinesis API that tells the
// producer a stream's record size limit. *kinesis.Client has it; a Client
// without it gets the default 1 MiB limits.
type StreamSummaryAPI interface {
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

var _ StreamSummaryAPI = (*kinesis.Client)(nil)

// streamLimits are the limits of one stream that depend on its record size
// limit.
type streamLimits struct {
	maxRecord int // largest record, data + partition key
	maxCall   int // largest PutRecords call
	burst     int // bytes a shard's byte bucket holds at most (0: one second's worth)
}

// defaultLimits are a stream's limits unless it allows larger records.
func defaultLimits(o *Options) streamLimits {
	return streamLimits{maxRecord: aggregation.MaxRecordSize, maxCall: min(o.CollectionMaxSize, MaxPutRecordsSize)}
}

// limitsFor returns the limits of a stream whose records may be kib KiB.
func limitsFor(o *Options, kib int32) streamLimits {
	l := defaultLimits(o)
	if size := int(kib) << 10; size > aggregation.MaxRecordSize && size <= MaxLargeRecordSize {
		l.maxRecord = size
		l.maxCall = o.CollectionMaxSize // up to 10 MiB, validated
		l.burst = largeRecordBurst
	}
	return l
}

// readLimits asks the stream for its record size limit, when the client can
// and the caller allows it.
func (p *Producer) readLimits(ctx context.Context) streamLimits {
	api, ok := p.client.(StreamSummaryAPI)
	if !ok || p.opts.SkipStreamLimits {
		return defaultLimits(&p.opts)
	}
	cctx, cancel := context.WithTimeout(ctx, p.opts.RequestTimeout)
	defer cancel()
	out, err := api.DescribeStreamSummary(cctx, &kinesis.DescribeStreamSummaryInput{StreamName: p.streamName, StreamARN: p.streamARN}, p.callOpts...)
	if err != nil || out.StreamDescriptionSummary == nil {
		if err == nil {
			err = fmt.Errorf("no stream description")
		}
		p.log.log(slog.LevelInfo, "producer: stream limits unknown, using 1 MiB records", "error", err)
		return defaultLimits(&p.opts)
	}
	kib := int32(aggregation.MaxRecordSize >> 10)
	if v := out.StreamDescriptionSummary.MaxRecordSizeInKiB; v != nil {
		kib = *v
	}
	return limitsFor(&p.opts, kib)
}
