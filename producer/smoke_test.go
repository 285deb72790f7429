package producer

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestPutDeliversEveryRecordOnItsShard(t *testing.T) {
	fc := newFakeClient(4)
	ctx := context.Background()
	p, err := New(ctx, fc, "s", func(o *Options) { o.Linger = 5 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	var fs []*Future
	for i := range 2000 {
		f, err := p.Put(ctx, fmt.Sprintf("key-%d", i%37), []byte(fmt.Sprintf("rec-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		r, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if r.ShardID == "" || r.SequenceNumber == "" {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, urs := range fc.stored() {
		n += len(urs)
	}
	if n != 2000 {
		t.Fatalf("stored %d", n)
	}
	t.Logf("%+v", p.Stats())
}
