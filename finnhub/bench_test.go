package finnhub_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/finnhub/feedsim"
)

func BenchmarkParseMessage(b *testing.B) {
	msg := []byte(`{"data":[{"c":["1","12"],"p":189.53,"s":"AAPL","t":1700000000001,"v":100},` +
		`{"p":420.1,"s":"MSFT","t":1700000000002,"v":3},{"c":null,"p":170.02,"s":"GOOGL","t":1700000000003,"v":0.5},` +
		`{"c":["37"],"p":250.5,"s":"TSLA","t":1700000000004,"v":200},{"c":[],"p":120.25,"s":"NVDA","t":1700000000005,"v":12}],"type":"trade"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := finnhub.ParseMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(5*b.N)/b.Elapsed().Seconds(), "trades/s")
}

// BenchmarkClientFromSimulator measures end-to-end websocket throughput: the
// simulator sends flat out, the client parses and hands trades to a no-op.
// One iteration is one trade.
func BenchmarkClientFromSimulator(b *testing.B) {
	for _, batch := range []int{1, 20} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			sim := feedsim.New(feedsim.Config{MaxTrades: int64(b.N), Batch: batch})
			srv := httptest.NewServer(sim)
			defer srv.Close()
			defer sim.Close()
			client, err := finnhub.NewClient(finnhub.ClientConfig{
				URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Symbols: []string{"AAPL", "MSFT", "GOOGL"},
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n := 0
			b.ResetTimer()
			client.Run(ctx, func(ctx context.Context, trades []finnhub.Trade) error {
				n += len(trades)
				if n >= b.N {
					cancel()
				}
				return nil
			})
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "trades/s")
		})
	}
}
