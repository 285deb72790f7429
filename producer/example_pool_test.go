package producer_test

import (
	"context"
	"fmt"

	"github.com/kplgo/kpl/kinesistest"
	"github.com/kplgo/kpl/producer"
)

// ExampleNewPool writes to several streams (one per tenant) from one
// process with one budget: the producers share the pool's senders, buffer
// bound and encoder, and each costs two goroutines of its own.
func ExampleNewPool() {
	ctx := context.Background()
	pool, err := producer.NewPool(func(o *producer.PoolOptions) {
		o.MaxConnections = 8          // PutRecords calls in flight, all streams together
		o.MaxBufferedBytes = 16 << 20 // buffered bytes, all streams together
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	tenants := []string{"tenant-a", "tenant-b", "tenant-c"}
	clients := map[string]*kinesistest.Client{}
	producers := map[string]*producer.Producer{}
	for _, t := range tenants {
		clients[t] = kinesistest.NewClient(kinesistest.ClientOptions{Stream: t, Shards: 2})
		p, err := producer.New(ctx, clients[t], t, func(o *producer.Options) { o.Pool = pool })
		if err != nil {
			fmt.Println(err)
			return
		}
		producers[t] = p
	}
	for i := range 30 {
		t := tenants[i%len(tenants)]
		if _, err := producers[t].Put(ctx, fmt.Sprint("device-", i), []byte("reading")); err != nil {
			fmt.Println(err)
			return
		}
	}
	for _, t := range tenants {
		if err := producers[t].Close(); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := pool.Close(); err != nil { // after its producers
		fmt.Println(err)
		return
	}
	for _, t := range tenants {
		fmt.Println(t, producers[t].Stats().UserRecordsSucceeded)
	}
	// Output:
	// tenant-a 10
	// tenant-b 10
	// tenant-c 10
}
