package feedsim

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// knownPrice returns a plausible starting price for the symbols the pipeline
// subscribes to by default; other symbols get a price derived from their name.
func knownPrice(sym string) (float64, bool) {
	switch sym {
	case "AAPL":
		return 190.00, true
	case "AMZN":
		return 180.00, true
	case "MSFT":
		return 420.00, true
	case "GOOGL":
		return 170.00, true
	case "TSLA":
		return 250.00, true
	case "NVDA":
		return 120.00, true
	case "META":
		return 500.00, true
	case "BINANCE:BTCUSDT":
		return 65000.00, true
	}
	return 0, false
}

// conditionCodes are trade condition codes of the kind Finnhub reports.
const conditionCodes = "1 8 9 12 24 37"

// symbolState is the random walk of one symbol.
type symbolState struct {
	price float64 // current price, rounded to cents
	lastT int64   // Unix ms of the symbol's last trade; strictly increasing
}

// startPrice returns the first price of sym: the table value, or a value in
// [10, 510) that depends only on the symbol and the seed.
func startPrice(sym string, seed int64) float64 {
	if p, ok := knownPrice(sym); ok {
		return p
	}
	h := fnv.New64a()
	h.Write([]byte(sym))
	h.Write([]byte(strconv.FormatInt(seed, 10)))
	return 10 + float64(h.Sum64()%50000)/100
}

// step advances the walk by one trade: a log-normal move of about 5 basis
// points, rounded to cents and kept at or above one cent.
func (st *symbolState) step(rng *rand.Rand) {
	p := st.price * math.Exp(0.0005*rng.NormFloat64())
	p = math.Round(p*100) / 100
	if p < 0.01 {
		p = 0.01
	}
	st.price = p
}

// volume draws a trade volume: mostly odd lots, some round lots, a few
// fractional shares.
func volume(rng *rand.Rand) float64 {
	switch r := rng.IntN(10); {
	case r < 7:
		return float64(1 + rng.IntN(99))
	case r < 9:
		return float64(100 * (1 + rng.IntN(10)))
	default:
		return float64(1+rng.IntN(9999)) / 10000
	}
}

// appendTrade appends one trade object in Finnhub's field order (c, p, s, t,
// v). The condition list is absent, null, empty or one to three codes.
func appendTrade(b []byte, rng *rand.Rand, sym string, price float64, t int64, v float64) []byte {
	b = append(b, '{')
	switch r := rng.IntN(10); {
	case r < 3: // absent
	case r < 4:
		b = append(b, `"c":null,`...)
	case r < 5:
		b = append(b, `"c":[],`...)
	default:
		b = append(b, `"c":[`...)
		codes := strings.Fields(conditionCodes)
		n := 1 + rng.IntN(3)
		for i := range n {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, codes[rng.IntN(len(codes))])
		}
		b = append(b, "],"...)
	}
	b = append(b, `"p":`...)
	b = strconv.AppendFloat(b, price, 'f', -1, 64)
	b = append(b, `,"s":`...)
	b = strconv.AppendQuote(b, sym)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"v":`...)
	b = strconv.AppendFloat(b, v, 'f', -1, 64)
	return append(b, '}')
}
