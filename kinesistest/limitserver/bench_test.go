package limitserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/kinesistest/limitserver"
)

// batchShapes are PutRecords calls as the load test sends them: 500 single
// trades, or aggregated records of about 50 KB (the KPL default) with an
// explicit hash key.
var batchShapes = []struct {
	name     string
	records  int
	dataLen  int
	explicit bool
}{
	{name: "500x120B-trades", records: 500, dataLen: 120},
	{name: "20x50KB-aggregates", records: 20, dataLen: 51200, explicit: true},
}

// entries builds one call's entries over many partition keys.
func entries(n, dataLen int, explicit bool) []types.PutRecordsRequestEntry {
	out := make([]types.PutRecordsRequestEntry, n)
	for i := range out {
		out[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("SYM%d", i)), Data: bytes.Repeat([]byte{'t'}, dataLen)}
		if explicit {
			out[i].PartitionKey = aws.String("a")
			out[i].ExplicitHashKey = aws.String(fmt.Sprintf("%d", uint64(i)*922337203685477580))
		}
	}
	return out
}

// BenchmarkPutRecordsSDK measures PutRecords through the real SDK client
// against the endpoint (limits off, loopback HTTP), from several goroutines:
// the client and the server share the machine, as in the load test.
func BenchmarkPutRecordsSDK(b *testing.B) {
	for _, shape := range batchShapes {
		b.Run(shape.name, func(b *testing.B) {
			srv := limitserver.New(limitserver.Options{BytesPerSecond: -1, RecordsPerSecond: -1})
			if err := srv.CreateStream("bench", 4); err != nil {
				b.Fatal(err)
			}
			c := start(b, srv)
			in := &kinesis.PutRecordsInput{StreamName: aws.String("bench"), Records: entries(shape.records, shape.dataLen, shape.explicit)}
			b.ReportAllocs()
			b.SetBytes(int64(shape.records * shape.dataLen))
			b.SetParallelism(4)
			t0 := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					out, err := c.PutRecords(context.Background(), in)
					if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
						b.Errorf("PutRecords: %v", err)
						return
					}
				}
			})
			secs := time.Since(t0).Seconds()
			b.ReportMetric(float64(b.N)/secs, "calls/s")
			b.ReportMetric(float64(b.N*shape.records)/secs, "recs/s")
		})
	}
}

// BenchmarkPutRecordSDK measures single PutRecord calls of 120-byte trades
// through the real SDK client, from several goroutines.
func BenchmarkPutRecordSDK(b *testing.B) {
	srv := limitserver.New(limitserver.Options{BytesPerSecond: -1, RecordsPerSecond: -1})
	if err := srv.CreateStream("bench", 4); err != nil {
		b.Fatal(err)
	}
	c := start(b, srv)
	data := bytes.Repeat([]byte{'t'}, 120)
	b.ReportAllocs()
	b.SetParallelism(8) // calls wait on the network: keep several in flight per CPU
	t0 := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			_, err := c.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("bench"),
				PartitionKey: aws.String(fmt.Sprintf("SYM%d", i%50)), Data: data})
			if err != nil {
				b.Errorf("PutRecord: %v", err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "calls/s")
}

// BenchmarkHandlerPutRecords measures the server's own work per PutRecords
// call (decoding, validation, routing, buckets, response) without HTTP
// transport or SDK: the endpoint's CPU cost in a load test.
func BenchmarkHandlerPutRecords(b *testing.B) {
	for _, shape := range batchShapes {
		b.Run(shape.name, func(b *testing.B) {
			srv := limitserver.New(limitserver.Options{BytesPerSecond: -1, RecordsPerSecond: -1})
			if err := srv.CreateStream("bench", 4); err != nil {
				b.Fatal(err)
			}
			body := requestBody(shape.records, shape.dataLen, shape.explicit)
			h := srv.Handler()
			b.ReportAllocs()
			b.SetBytes(int64(shape.records * shape.dataLen))
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
				req.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecords")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(b.N*shape.records)/b.Elapsed().Seconds(), "recs/s")
		})
	}
}

// requestBody is a PutRecords body as the SDK serializes it.
func requestBody(n, dataLen int, explicit bool) string {
	var sb strings.Builder
	sb.WriteString(`{"Records":[`)
	data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'t'}, dataLen))
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		if explicit {
			fmt.Fprintf(&sb, `{"Data":%q,"ExplicitHashKey":"%d","PartitionKey":"a"}`, data, uint64(i)*922337203685477580)
		} else {
			fmt.Fprintf(&sb, `{"Data":%q,"PartitionKey":"SYM%d"}`, data, i)
		}
	}
	sb.WriteString(`],"StreamName":"bench"}`)
	return sb.String()
}

// BenchmarkHandlerPutRecord measures the server's own work per PutRecord
// call of a 120-byte trade, without HTTP transport or SDK.
func BenchmarkHandlerPutRecord(b *testing.B) {
	srv := limitserver.New(limitserver.Options{BytesPerSecond: -1, RecordsPerSecond: -1})
	if err := srv.CreateStream("bench", 4); err != nil {
		b.Fatal(err)
	}
	body := `{"Data":"` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'t'}, 120)) + `","PartitionKey":"AAPL","StreamName":"bench"}`
	h := srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecord")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
