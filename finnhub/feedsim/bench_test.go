package feedsim_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/kplgo/kpl/finnhub/feedsim"
)

// BenchmarkRate measures how closely the simulator keeps to Config.Rate (0:
// how fast it can go). One iteration is one trade read by a websocket client.
func BenchmarkRate(b *testing.B) {
	for _, rate := range []float64{2000, 10000, 0} {
		b.Run("rate="+strconv.FormatFloat(rate, 'f', -1, 64), func(b *testing.B) {
			_, url := startSim(b, feedsim.Config{Rate: rate, MaxTrades: int64(b.N), PingInterval: -1})
			c := dial(b, url)
			send(b, c, "subscribe", "AAPL")
			send(b, c, "subscribe", "MSFT")
			b.ResetTimer()
			start := time.Now()
			for got := 0; got < b.N; {
				m, _ := read(b, c)
				got += len(m.Data)
			}
			perSec := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(perSec, "trades/s")
			if rate > 0 {
				b.ReportMetric(100*(perSec-rate)/rate, "rate-error-%")
			}
		})
	}
}
