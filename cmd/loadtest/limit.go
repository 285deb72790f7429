package main

import (
	"context"
	"fmt"

	"github.com/kplgo/kpl/internal/loadgen"
	"github.com/kplgo/kpl/kinesistest/limitserver"
)

// startLimitServer starts the limit-enforcing endpoint in-process on a free
// loopback port. It returns the URL, a function that reads a stream's
// counters, and a function that stops the server.
func startLimitServer(context.Context) (string, func(stream string) *loadgen.EndpointCounters, func(), error) {
	srv := limitserver.New(limitserver.Options{})
	url, err := srv.Start("127.0.0.1:0")
	if err != nil {
		return "", nil, nil, fmt.Errorf("start the limit endpoint: %w", err)
	}
	stats := func(stream string) *loadgen.EndpointCounters {
		st, err := srv.Stats(stream)
		if err != nil {
			return nil
		}
		return &loadgen.EndpointCounters{
			Records:   int64(st.Records),
			Bytes:     int64(st.Bytes),
			Throttled: int64(st.Throttled),
			Calls:     int64(st.PutRecordCalls + st.PutRecordsCalls),
		}
	}
	return url, stats, func() { _ = srv.Close() }, nil
}
