package finnhub_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/finnhub/feedsim"
)

// A client reading 20 trades from a local simulator, then stopping.
func ExampleClient_Run() {
	sim := feedsim.New(feedsim.Config{Token: "demo-key", MaxTrades: 20, Seed: 1})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()

	client, err := finnhub.NewClient(finnhub.ClientConfig{
		URL:     "ws" + strings.TrimPrefix(srv.URL, "http"), // finnhub.DefaultURL for the real feed
		Token:   "demo-key",
		Symbols: []string{"AAPL", "MSFT"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err = client.Run(ctx, func(ctx context.Context, trades []finnhub.Trade) error {
		n += len(trades)
		if n == 20 {
			cancel()
		}
		return nil
	})
	fmt.Println(n, "trades;", err)
	// Output: 20 trades; context canceled
}

func ExampleRedactURL() {
	fmt.Println(finnhub.RedactURL("wss://ws.finnhub.io?token=c0ffee&x=1"))
	// Output: wss://ws.finnhub.io?token=REDACTED&x=1
}
