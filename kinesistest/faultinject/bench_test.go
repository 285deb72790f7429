package faultinject_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kplgo/kpl/kinesistest/faultinject"
	"github.com/kplgo/kpl/kinesistest/limitserver"
)

// handlerTransport serves requests with an in-process handler, so that the
// benchmark measures the injector and the engine, not the network.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// BenchmarkPutRecordsWithEntryFaults sends 500-entry PutRecords calls
// through a transport that fails a share of the entries of one hash range,
// as faultproxy's 'throttle shard=N p=0.5' does.
func BenchmarkPutRecordsWithEntryFaults(b *testing.B) {
	srv := limitserver.New(limitserver.Options{BytesPerSecond: -1, RecordsPerSecond: -1})
	if err := srv.CreateStream("s", 2); err != nil {
		b.Fatal(err)
	}
	tr := faultinject.New(handlerTransport{srv.Handler()})
	tr.Seed(1)
	half := faultinject.HashRange{Start: "170141183460469231731687303715884105728", End: "340282366920938463463374607431768211455"}
	if err := tr.SetEntryFaults(faultinject.EntryFault{Probability: 0.5, HashRanges: []faultinject.HashRange{half}}); err != nil {
		b.Fatal(err)
	}
	var body bytes.Buffer
	body.WriteString(`{"StreamName":"s","Records":[`)
	for i := range 500 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"Data":"ZGF0YQ==","PartitionKey":"key-%d"}`, i)
	}
	body.WriteString(`]}`)
	payload := body.Bytes()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest(http.MethodPost, "http://engine/", bytes.NewReader(payload))
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecords")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "entries/s")
}
