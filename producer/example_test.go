package producer_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/producer"
)

// ExampleNew builds a client whose own retries are off (the producer
// retries failed entries itself) and a producer with a few options changed.
func ExampleNew() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	client := kinesis.NewFromConfig(cfg, producer.ClientOptions())

	p, err := producer.New(ctx, client, "trades", func(o *producer.Options) {
		o.Linger = 50 * time.Millisecond
		o.RecordTTL = time.Minute
		o.Logger = producer.PrintfLogger(logrus.StandardLogger())
	})
	if err != nil {
		log.Fatal(err) // e.g. a *types.ResourceNotFoundException for a missing stream
	}
	defer p.Close() // flushes and waits for every record's result
}

// ExampleProducer_Put puts records without waiting, then checks their
// results.
func ExampleProducer_Put() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p, err := producer.New(ctx, kinesis.NewFromConfig(cfg, producer.ClientOptions()), "trades")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var futures []*producer.Future
	for _, trade := range []struct{ symbol, json string }{
		{"AAPL", `{"s":"AAPL","p":189.5,"v":100}`},
		{"MSFT", `{"s":"MSFT","p":411.2,"v":20}`},
	} {
		// Put blocks only while the buffer is full; ctx bounds that wait.
		f, err := p.Put(ctx, trade.symbol, []byte(trade.json))
		if err != nil {
			log.Printf("refused: %v", err) // ErrClosed, ErrRecordTooLarge, ErrBufferFull...
			continue
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		res, err := f.Wait(ctx)
		var rerr *producer.RecordError
		switch {
		case errors.As(err, &rerr) && errors.Is(err, producer.ErrRecordExpired):
			log.Printf("not delivered within the TTL after %d attempts", len(rerr.Attempts))
		case rerr != nil:
			log.Printf("failed: %s: %s", rerr.Code, rerr.Message)
		case err == nil:
			log.Printf("stored on %s at %s/%d after %v", res.ShardID, res.SequenceNumber, res.SubSequenceNumber, res.Latency)
		}
	}
}
