package metrics_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kplgo/kpl/kinesistest"
	"github.com/kplgo/kpl/producer"
	"github.com/kplgo/kpl/producer/metrics"
)

// ExampleNewCollectorWithLabels exports the producers of two streams, which
// share a Pool, to one registry under one namespace: each collector labels
// its metrics with its stream.
func ExampleNewCollectorWithLabels() {
	ctx := context.Background()
	pool, err := producer.NewPool()
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := prometheus.NewRegistry()
	var producers []*producer.Producer
	for _, stream := range []string{"orders", "trades"} {
		client := kinesistest.NewClient(kinesistest.ClientOptions{Stream: stream, Shards: 2})
		p, err := producer.New(ctx, client, stream, func(o *producer.Options) { o.Pool = pool })
		if err != nil {
			fmt.Println(err)
			return
		}
		producers = append(producers, p)
		reg.MustRegister(metrics.NewCollectorWithLabels(p, "kpl", prometheus.Labels{"stream": stream}))
	}
	for i, p := range producers {
		for j := range 3 * (i + 1) {
			if _, err := p.Put(ctx, fmt.Sprint("key-", j), []byte("value")); err != nil {
				fmt.Println(err)
				return
			}
		}
		if err := p.Close(); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := pool.Close(); err != nil { // after its producers
		fmt.Println(err)
		return
	}
	families, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range families {
		if f.GetName() != "kpl_producer_user_records_succeeded_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			fmt.Printf("%s{%s=%q} %g\n", f.GetName(), m.GetLabel()[0].GetName(), m.GetLabel()[0].GetValue(), m.GetCounter().GetValue())
		}
	}
	// Output:
	// kpl_producer_user_records_succeeded_total{stream="orders"} 3
	// kpl_producer_user_records_succeeded_total{stream="trades"} 6
}
