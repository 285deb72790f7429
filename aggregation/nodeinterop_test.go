package aggregation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nodeAggDir returns the directory of the aws-kinesis-agg npm package: the
// KINESIS_AGG_DIR environment variable (the Makefile exports it), else the
// repository's .tools folder, where make tools installs it.
func nodeAggDir() string {
	if d := os.Getenv("KINESIS_AGG_DIR"); d != "" {
		return d
	}
	d, _ := filepath.Abs(filepath.Join("..", ".tools", "node_modules", "aws-kinesis-agg"))
	return d
}

// nodeKinesisRecord is a Kinesis record in the (v2) shape aws-kinesis-agg
// reads.
type nodeKinesisRecord struct {
	PartitionKey         string `json:"partitionKey"`
	ExplicitPartitionKey string `json:"explicitPartitionKey,omitempty"`
	SequenceNumber       string `json:"sequenceNumber"`
	Data                 []byte `json:"data"` // base64 in JSON
}

// nodeUserRecord is a user record as aws-kinesis-agg returns it.
type nodeUserRecord struct {
	PartitionKey         string  `json:"partitionKey"`
	ExplicitPartitionKey *string `json:"explicitPartitionKey"`
	SequenceNumber       string  `json:"sequenceNumber"`
	SubSequenceNumber    *int    `json:"subSequenceNumber"`
	Data                 []byte  `json:"data"`
}

// TestNodeDeaggregatorReadsTaggedAggregates checks that the official Node
// deaggregation library (npm aws-kinesis-agg) reads every user record of
// aggregates whose records carry id tags, as it reads aggregates without
// them: same keys, sub-sequence numbers and data as Deaggregate and as the
// records put.
func TestNodeDeaggregatorReadsTaggedAggregates(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: the interoperability test with aws-kinesis-agg needs it")
	}
	dir := nodeAggDir()
	if _, err := os.Stat(filepath.Join(dir, "index.js")); err != nil {
		t.Skipf("aws-kinesis-agg is not installed at %s (run make tools, or set KINESIS_AGG_DIR)", dir)
	}

	// Aggregates of every shape the id tags take: runs, gaps, switches of
	// producer id, sequence numbers up to 2^64-1, explicit hash keys, empty
	// and large data; one aggregate without ids and one plain record.
	var (
		input []nodeKinesisRecord
		want  [][]Record
	)
	ids := idSource{}
	seal := func(a *Aggregator, recs []Record) {
		input = append(input, nodeKinesisRecord{PartitionKey: AggregatePartitionKey,
			SequenceNumber: fmt.Sprint(len(input) + 1), Data: a.AppendEncoded(nil)})
		want = append(want, recs)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for agg := range 12 {
		a := NewAggregator(51200, 0)
		var recs []Record
		for i := 0; i < 1+agg*agg*3; i++ {
			r := randomRecord(rng)
			if len(r.Data) > 2000 {
				r.Data = r.Data[:2000]
			}
			if agg != 5 {
				r.ID = ids.next(rng)
			}
			if err := a.Add(r); err != nil {
				break
			}
			recs = append(recs, r)
		}
		seal(a, recs)
	}
	input = append(input, nodeKinesisRecord{PartitionKey: "plain", SequenceNumber: "99", Data: []byte("not an aggregate")})
	want = append(want, []Record{{PartitionKey: "plain", Data: []byte("not an aggregate")}})

	enc, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "records.json")
	if err := os.WriteFile(file, enc, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join("testdata", "node-deaggregate.js"), dir, file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got [][]nodeUserRecord
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output: %v\n%.500s", err, out)
	}
	if len(got) != len(want) {
		t.Fatalf("node returned %d Kinesis records, want %d", len(got), len(want))
	}
	total := 0
	for k, recs := range want {
		ours, err := Deaggregate(input[k].Data, input[k].PartitionKey, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(got[k]) != len(recs) || len(ours) != len(recs) {
			t.Fatalf("Kinesis record %d: node read %d user records, Deaggregate %d, want %d", k, len(got[k]), len(ours), len(recs))
		}
		for i, w := range recs {
			g := got[k][i]
			aggregated := k < len(want)-1
			if g.PartitionKey != w.PartitionKey || !bytes.Equal(g.Data, w.Data) || g.SequenceNumber != input[k].SequenceNumber {
				t.Fatalf("Kinesis record %d, user record %d: node read key %q, %d bytes, sequence %s; want %q, %d bytes",
					k, i, g.PartitionKey, len(g.Data), g.SequenceNumber, w.PartitionKey, len(w.Data))
			}
			if aggregated && (g.SubSequenceNumber == nil || *g.SubSequenceNumber != i) {
				t.Fatalf("Kinesis record %d, user record %d: node sub-sequence number %v", k, i, g.SubSequenceNumber)
			}
			if w.ExplicitHashKey != "" && (g.ExplicitPartitionKey == nil || *g.ExplicitPartitionKey != w.ExplicitHashKey) {
				t.Fatalf("Kinesis record %d, user record %d: node explicit hash key %v, want %s", k, i, g.ExplicitPartitionKey, w.ExplicitHashKey)
			}
			if ours[i].ID != w.ID || !bytes.Equal(ours[i].Data, g.Data) {
				t.Fatalf("Kinesis record %d, user record %d: Deaggregate id %v, want %v", k, i, ours[i].ID, w.ID)
			}
			total++
		}
	}
	t.Logf("aws-kinesis-agg read all %d user records of %d Kinesis records (%s)", total, len(input), strings.TrimSpace(dir))
}
