package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/gorilla/websocket"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/kinesisread"
)

// TestTheStreamHoldsEachTradeAsFinnhubSentIt runs the real binary against a
// websocket that sends trades with unknown fields, "c":null, "c":[], no
// "c", big and fractional numbers and unicode, and compares the records
// read back from kinesis-mock byte for byte (the ingestion timestamp aside,
// which is checked to be a recent Unix ms time).
func TestTheStreamHoldsEachTradeAsFinnhubSentIt(t *testing.T) {
	t.Parallel()
	frames := []string{
		`{"data":[{"c":["1","8","24","12"],"p":189.5,"s":"AAPL","t":1575526691134,"v":100}],"type":"trade"}`,
		`{"type":"trade","data":[{"s":"MSFT","p":420.01,"t":1575526691135,"v":3,"c":null},{"s":"MSFT","p":420.02,"t":1575526691136,"v":4,"c":[]}]}`,
		`{"type":"trade","data":[{"s":"BINANCE:BTCUSDT","p":97123.456789012345,"t":1575526691137,"v":0.00001234}]}`,
		`{"type":"trade","data":[ { "s" : "TSLA" , "p" : 1.5E+3 , "t" : 1575526691138 , "v" : 12345678901234567890123 , "x" : { "venue" : "Zürich \u2603" } , "c" : [ "I" ] } ]}`,
	}
	want := []string{ // sorted
		`{"c":["1","8","24","12"],"p":189.5,"s":"AAPL","t":1575526691134,"v":100,"ingestion_timestamp":TS}`,
		`{"s":"BINANCE:BTCUSDT","p":97123.456789012345,"t":1575526691137,"v":0.00001234,"ingestion_timestamp":TS}`,
		`{"s":"MSFT","p":420.01,"t":1575526691135,"v":3,"c":null,"ingestion_timestamp":TS}`,
		`{"s":"MSFT","p":420.02,"t":1575526691136,"v":4,"c":[],"ingestion_timestamp":TS}`,
		`{"s":"TSLA","p":1.5E+3,"t":1575526691138,"v":12345678901234567890123,"x":{"venue":"Zürich \u2603"},"c":["I"],"ingestion_timestamp":TS}`,
	}
	up := websocket.Upgrader{}
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for _, f := range frames {
			if c.WriteMessage(websocket.TextMessage, []byte(f)) != nil {
				return
			}
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(feed.Close)
	_, stream := server.NewStream(t, 2)
	start := time.Now()
	p := startProducer(t, producerEnv("ws"+strings.TrimPrefix(feed.URL, "http")+"/", stream, ""), "-max-trades", "5", "-status-interval", "0")
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, p.out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shards, err := kinesisread.ReadAll(ctx, server.Client(), stream)
	if err != nil {
		t.Fatal(err)
	}
	ts := regexp.MustCompile(`"ingestion_timestamp":(\d+)}$`)
	var got []string
	for _, sh := range shards {
		for _, kr := range sh.Records {
			users, err := aggregation.Deaggregate(kr.Data, aws.ToString(kr.PartitionKey), "")
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range users {
				m := ts.FindSubmatch(u.Data)
				if m == nil {
					t.Fatalf("no ingestion timestamp at the end of %s", u.Data)
				}
				n, err := strconv.ParseInt(string(m[1]), 10, 64)
				if at := time.UnixMilli(n); err != nil || at.Before(start.Add(-time.Second)) || at.After(time.Now()) {
					t.Errorf("ingestion timestamp %s is not a time of the run", m[1])
				}
				got = append(got, ts.ReplaceAllString(string(u.Data), `"ingestion_timestamp":TS}`))
			}
		}
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stored records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
