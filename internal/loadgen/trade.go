// Package loadgen holds the load-generation logic shared by the benchmarks in
// bench/ and the cmd/loadtest command: a synthetic trade generator, the
// one-PutRecord-per-trade baseline, the aggregated producer as a sink, a
// measuring driver, and the report, JSON and chart output.
package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// wellKnownSymbols are real US tickers; DefaultSymbols takes from them first.
var wellKnownSymbols = [...]string{
	"AAPL", "AMZN", "MSFT", "GOOGL", "TSLA", "NVDA", "META", "BRK.B", "JPM", "V",
	"UNH", "XOM", "JNJ", "WMT", "MA", "PG", "AVGO", "HD", "CVX", "LLY",
	"MRK", "ABBV", "PEP", "KO", "COST", "ADBE", "CRM", "NFLX", "AMD", "INTC",
	"CSCO", "ORCL", "TMO", "ACN", "MCD", "ABT", "DHR", "NKE", "TXN", "QCOM",
	"BAC", "WFC", "PFE", "DIS", "VZ", "CMCSA", "T", "UPS", "PM", "NEE",
	"RTX", "HON", "LOW", "IBM", "SBUX", "AMGN", "CAT", "GS", "MS", "BA",
	"INTU", "AMAT", "GE", "BLK", "DE", "PLD", "SPGI", "MDT", "ISRG", "NOW",
	"BKNG", "LMT", "AXP", "SYK", "GILD", "ADI", "MDLZ", "TJX", "CVS", "C",
	"MMC", "ADP", "VRTX", "REGN", "MO", "SCHW", "ZTS", "CB", "PGR", "SO",
	"DUK", "BDX", "CI", "EQIX", "SLB", "EOG", "ITW", "NOC", "CL", "APD",
}

// DefaultSymbols returns n distinct ticker symbols: well-known ones first,
// then synthetic ones (SYM0101, SYM0102, ...) when n exceeds that list.
func DefaultSymbols(n int) []string {
	if n <= 0 {
		n = 1
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if i < len(wellKnownSymbols) {
			out = append(out, wellKnownSymbols[i])
		} else {
			out = append(out, fmt.Sprintf("SYM%04d", i+1))
		}
	}
	return out
}

// conditionSets are the trade condition code lists the generator picks from,
// as Finnhub sends them (the field may be absent; nil here means absent).
var conditionSets = [...][]string{
	{"1", "12"}, {"1"}, {"12", "37"}, {"1", "8", "12"}, nil, {"1", "24", "12"},
}

// Generator makes synthetic trades in the JSON form the pipeline writes to
// Kinesis: the Finnhub fields s, p, t, v, c plus ingestion_timestamp, e.g.
//
//	{"s":"AAPL","p":189.52,"t":1764337000123,"v":100,"c":["1","12"],"ingestion_timestamp":1764337000125}
//
// Prices follow a random walk per symbol. A Generator is deterministic for a
// given seed and not safe for concurrent use.
type Generator struct {
	symbols    []string
	prices     []float64
	rng        *rand.Rand
	recordSize int
	slab       []byte // trades are cut from here, so a trade costs no allocation of its own
	numbered   bool   // write "n" first
	seq        int64  // the next trade's "n"
	stride     int64  // from one "n" to the next
}

// Number makes every following trade carry its sequence number in the run
// (0, 1, 2, ...) as a first field "n", so that a read-back of the stream
// can tell lost and duplicated trades (see TradeSeq). It returns g.
func (g *Generator) Number() *Generator {
	return g.NumberFrom(0, 1)
}

// NumberFrom is Number with the numbers first, first+stride, first+2*stride,
// ...: the generators of n writers of one stream, numbered from 0 to n-1
// with stride n, share one sequence without a number in common. It returns
// g.
func (g *Generator) NumberFrom(first, stride int64) *Generator {
	g.numbered, g.seq, g.stride = true, first, max(stride, 1)
	return g
}

// TradeSeq returns the sequence number of a numbered trade ({"n":123,...}),
// or -1 when data carries none.
func TradeSeq(data []byte) int64 {
	const prefix = `{"n":`
	if len(data) <= len(prefix) || string(data[:len(prefix)]) != prefix {
		return -1
	}
	var n int64
	i := len(prefix)
	for ; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
		n = n*10 + int64(data[i]-'0')
	}
	if i == len(prefix) || i == len(data) || data[i] != ',' {
		return -1
	}
	return n
}

// NewGenerator returns a generator over symbols. recordSize > 0 pads each
// trade (with a "x" field) up to exactly that many bytes when the natural
// encoding is shorter; 0 leaves trades at their natural ~110-130 bytes.
func NewGenerator(symbols []string, recordSize int, seed uint64) *Generator {
	if len(symbols) == 0 {
		symbols = DefaultSymbols(1)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	prices := make([]float64, len(symbols))
	for i := range prices {
		prices[i] = 20 + rng.Float64()*480
	}
	return &Generator{symbols: symbols, prices: prices, rng: rng, recordSize: recordSize}
}

// Symbols returns the generator's symbol set.
func (g *Generator) Symbols() []string { return g.symbols }

// Next returns the next trade: its symbol and its JSON encoding. The returned
// slice is never reused by the generator, so it may be handed to a producer
// that keeps it until the record's result.
func (g *Generator) Next(now time.Time) (symbol string, data []byte) {
	i := g.rng.IntN(len(g.symbols))
	if len(g.slab) < 512 {
		g.slab = make([]byte, 64<<10)
	}
	buf := g.appendTrade(g.slab[:0], i, now)
	if len(buf) > len(g.slab) { // did not fit: buf is a fresh allocation
		return g.symbols[i], buf[:len(buf):len(buf)]
	}
	data = g.slab[:len(buf):len(buf)]
	g.slab = g.slab[len(buf):]
	return g.symbols[i], data
}

// AppendTrade appends the next trade to dst and returns the extended slice
// and the trade's symbol.
func (g *Generator) AppendTrade(dst []byte, now time.Time) ([]byte, string) {
	i := g.rng.IntN(len(g.symbols))
	return g.appendTrade(dst, i, now), g.symbols[i]
}

func (g *Generator) appendTrade(dst []byte, i int, now time.Time) []byte {
	start := len(dst)
	// Random walk with a small drift back to the start price band.
	p := g.prices[i] * (1 + (g.rng.Float64()-0.5)*0.002)
	if p < 1 {
		p = 1
	}
	g.prices[i] = p
	tradeMs := now.UnixMilli() - int64(g.rng.IntN(5))
	volume := 1 + g.rng.IntN(10)*g.rng.IntN(100)
	conds := conditionSets[g.rng.IntN(len(conditionSets))]

	if g.numbered {
		dst = append(dst, `{"n":`...)
		dst = strconv.AppendInt(dst, g.seq, 10)
		dst = append(dst, `,"s":"`...)
		g.seq += g.stride
	} else {
		dst = append(dst, `{"s":"`...)
	}
	dst = append(dst, g.symbols[i]...)
	dst = append(dst, `","p":`...)
	dst = strconv.AppendFloat(dst, math.Round(p*100)/100, 'f', -1, 64)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, tradeMs, 10)
	dst = append(dst, `,"v":`...)
	dst = strconv.AppendInt(dst, int64(volume), 10)
	if conds != nil {
		dst = append(dst, `,"c":[`...)
		for j, c := range conds {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, c...)
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"ingestion_timestamp":`...)
	dst = strconv.AppendInt(dst, now.UnixMilli(), 10)
	// Pad to the requested size with a string field: `,"x":""` is 7 bytes plus padding.
	if n := len(dst) - start + 1; g.recordSize > 0 && n+7 <= g.recordSize {
		dst = append(dst, `,"x":"`...)
		for k := g.recordSize - n - 7; k > 0; k-- {
			dst = append(dst, 'x')
		}
		dst = append(dst, '"')
	}
	return append(dst, '}')
}
