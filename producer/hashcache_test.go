package producer

import (
	"strconv"
	"sync"
	"testing"

	"github.com/kplgo/kpl/aggregation"
)

func TestHashCacheReturnsTheKeysHashAndLearnsRepeatedKeys(t *testing.T) {
	c := newHashCache(64)
	keys := []string{"AAPL", "MSFT", "BINANCE:BTCUSDT", "a", "key-12345678"}
	for range 200 { // a repeated key is stored after a few misses
		for _, k := range keys {
			h, err := c.hashOf(k)
			if err != nil {
				t.Fatal(err)
			}
			if want := aggregation.PartitionKeyHash(k); h != want {
				t.Fatalf("hashOf(%q) = %v, want %v", k, h, want)
			}
		}
	}
	held := 0
	for i := range c.slots {
		if e := c.slots[i].Load(); e != nil {
			if c.tags[i].Load() == 0 {
				t.Fatalf("slot %d holds %q with an empty tag", i, e.key)
			}
			held++
		}
	}
	if held == 0 {
		t.Fatal("200 rounds of 5 keys stored none of them")
	}
}

func TestHashCacheRefusesAnInvalidKeyAndNeverHoldsIt(t *testing.T) {
	c := newHashCache(16)
	for range 100 {
		if _, err := c.hashOf(""); err == nil {
			t.Fatal("an empty partition key was accepted")
		}
	}
	for i := range c.slots {
		if e := c.slots[i].Load(); e != nil {
			t.Fatalf("slot %d holds %q", i, e.key)
		}
	}
}

// TestHashCacheConcurrentUse runs many goroutines over colliding keys (a
// tiny table): every answer must be the key's own hash, under -race too.
func TestHashCacheConcurrentUse(t *testing.T) {
	c := newHashCache(4)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := "k" + strconv.Itoa((i*7+g)%37)
				h, err := c.hashOf(k)
				if err != nil || h != aggregation.PartitionKeyHash(k) {
					t.Errorf("hashOf(%q) = %v, %v", k, h, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
