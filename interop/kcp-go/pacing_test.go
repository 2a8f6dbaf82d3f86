package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestRateInterval(t *testing.T) {
	for rate, want := range map[float64]time.Duration{1: time.Second, 100: 10 * time.Millisecond, 3: 333333333, 1e5: 10 * time.Microsecond} {
		if got := rateInterval(rate); got != want {
			t.Errorf("rate %v: %v, want %v", rate, got, want)
		}
	}
}

func TestPacerOnTime(t *testing.T) {
	p := newPacer(t0.Add(ms(3)), ms(10), 4)
	if p.due(t0) || p.due(t0.Add(ms(2.9))) || !p.due(t0.Add(ms(3))) {
		t.Fatal("the first slot is at first")
	}
	// Sent a little after each slot: one message per slot, each slot 10 ms after the last.
	for k := range 100 {
		slot := t0.Add(ms(3 + 10*float64(k)))
		now := slot.Add(ms(0.5))
		if !p.due(now) {
			t.Fatalf("slot %d not due at %v", k, now)
		}
		if got := p.sent(now); !got.Equal(slot) {
			t.Fatalf("slot %d: %v, want %v", k, got, slot)
		}
		if p.due(now) {
			t.Fatalf("a second message due in slot %d", k)
		}
	}
	if p.late != 0 || p.skipped != 0 {
		t.Errorf("late %d skipped %d", p.late, p.skipped)
	}
}

func TestPacerDoesNotBunchAfterAStall(t *testing.T) {
	// burst 3: after a stall of 10 slots, at most 3 messages go back to back; 7 slots are
	// skipped; the schedule then continues from the skipped slots' grid.
	p := newPacer(t0, ms(10), 3)
	p.sent(t0) // slot 0
	now := t0.Add(ms(105))
	var burst int
	for p.due(now) {
		p.sent(now)
		burst++
		if burst > 100 {
			t.Fatal("no bound")
		}
	}
	// Slots 1..10 were due at 105 ms: 10 of them; 3 sent (slots 10, 90 and 100 ms), 7
	// skipped. Slots 10 and 90 went more than an interval late.
	if burst != 3 || p.skipped != 7 {
		t.Errorf("burst %d skipped %d, want 3 and 7", burst, p.skipped)
	}
	if p.late != 2 {
		t.Errorf("late %d, want 2", p.late)
	}
	if want := t0.Add(ms(110)); !p.next.Equal(want) {
		t.Errorf("next %v, want %v (the grid, not the stall's end)", p.next.Sub(t0), want.Sub(t0))
	}
}

func TestPacerWindowOfOne(t *testing.T) {
	// burst 1 (window 1): a late send never leaves a second one due.
	p := newPacer(t0, ms(10), 1)
	p.sent(t0.Add(ms(35)))
	if p.due(t0.Add(ms(35))) {
		t.Error("due again at once")
	}
	if p.skipped != 3 || !p.next.Equal(t0.Add(ms(40))) {
		t.Errorf("skipped %d next %v", p.skipped, p.next.Sub(t0))
	}
}

func TestPacerCatchesUpAfterALateStart(t *testing.T) {
	// The first look is 25 ms late (burst 4): slots 0, 10 and 20 ms go at once (the first two
	// more than an interval late), nothing is skipped, and the rate holds from then on.
	p := newPacer(t0, ms(10), 4)
	var sent, atStart int
	for now := t0.Add(ms(25)); now.Before(t0.Add(ms(1000))); now = now.Add(ms(1)) {
		for p.due(now) {
			p.sent(now)
			sent++
		}
		if now.Equal(t0.Add(ms(25))) {
			atStart = sent
		}
	}
	// Slots 0..990 ms: 100.
	if atStart != 3 || sent != 100 || p.skipped != 0 || p.late != 2 {
		t.Errorf("at start %d, sent %d, skipped %d, late %d", atStart, sent, p.skipped, p.late)
	}
}

func TestHistogramIndex(t *testing.T) {
	for v := uint64(0); v < 1<<20; v += 1 + v/1000 {
		i := histIndex(v)
		if i < 0 || i >= histBuckets || histUpper(i) < v || (i > 0 && histUpper(i-1) >= v) {
			t.Fatalf("value %d: bucket %d, upper %d, previous upper %d", v, i, histUpper(i), histUpper(i-1))
		}
	}
	if i := histIndex(^uint64(0)); i != histBuckets-1 || histUpper(i) != ^uint64(0) {
		t.Errorf("max value: bucket %d of %d", i, histBuckets)
	}
	for v := uint64(0); v < histLinear; v++ {
		if histUpper(histIndex(v)) != v {
			t.Fatalf("%d is not exact", v)
		}
	}
}

func TestHistogramPercentiles(t *testing.T) {
	var h latHist
	if h.percentile(0.99) != 0 || h.maxUs() != 0 {
		t.Fatal("empty")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var all []int64
	for range 100000 {
		us := int64(rng.ExpFloat64() * 3000)
		all = append(all, us)
		h.record(time.Duration(us) * time.Microsecond)
	}
	slices.Sort(all)
	exact := func(p float64) int64 { return all[int(float64(len(all))*p+0.999999)-1] }
	for _, p := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		got, want := h.percentile(p), exact(p)
		if got < want || float64(got-want) > float64(want)/histSub+1 {
			t.Errorf("p%v: %d, exact %d", p*100, got, want)
		}
	}
	if h.maxUs() != all[len(all)-1] || h.percentile(1) != all[len(all)-1] {
		t.Errorf("max %d, want %d", h.maxUs(), all[len(all)-1])
	}
	if h.count() != 100000 {
		t.Errorf("count %d", h.count())
	}
}
