package faultinject_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/kinesistest/faultinject"
)

// A Kinesis client whose calls go through the injector.
func ExampleTransport() {
	var cfg aws.Config // e.g. kinesismock.Server.Config()
	tr := faultinject.New(nil)
	client := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.HTTPClient = &http.Client{Transport: tr}
	})
	_ = client

	// Throttle a fifth of the entries, and reset the next two PutRecords
	// calls after Kinesis stored them.
	_ = tr.SetEntryFaults(faultinject.EntryFault{Code: faultinject.CodeThrottled, Probability: 0.2})
	_ = tr.AddRequestFault(faultinject.RequestFault{Kind: faultinject.ResetAfterForward, Count: 2, Operations: []string{"PutRecords"}})
	// Later: take Kinesis away for ten seconds.
	tr.StartOutage(10 * time.Second)

	// At the end: what was stored by calls the client saw fail.
	tr.Wait()
	fmt.Println(len(tr.Ambiguous()))
}

// A proxy for another process, e.g. the trade producer started with its
// Kinesis endpoint set to the proxy's URL.
func ExampleNewProxy() {
	target, _ := url.Parse("http://127.0.0.1:4567") // kinesis-mock
	tr := faultinject.New(nil)
	proxy := httptest.NewServer(faultinject.NewProxy(target, tr))
	defer proxy.Close()
	fmt.Println("point the process at", proxy.URL)

	_ = tr.AddRequestFault(faultinject.RequestFault{Kind: faultinject.HTTP503, Probability: 0.1})
}
