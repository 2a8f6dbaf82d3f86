package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// pacer is one session's send schedule for bench-client --rate: message k is due at
// first + k*interval, whatever happened to the others (open loop), except that a session
// that fell behind catches up with at most burst messages back to back. Slots further
// behind than that are skipped (and counted), so a stall never turns into a longer burst.
type pacer struct {
	interval time.Duration
	burst    int64
	next     time.Time // when the next message is due
	skipped  int64     // slots given up because they were more than burst slots late
	late     int64     // messages sent more than one interval after their slot
}

func newPacer(first time.Time, interval time.Duration, burst int) *pacer {
	return &pacer{interval: interval, burst: int64(max(burst, 1)), next: first}
}

// due reports whether a message may be sent at now.
func (p *pacer) due(now time.Time) bool { return !now.Before(p.next) }

// sent records a message sent at now for the slot p.next, and returns that slot's time
// (the message's intended send time). It then moves to the next slot, skipping slots so
// that this message and the ones due after it make at most burst back to back.
func (p *pacer) sent(now time.Time) (slot time.Time) {
	slot = p.next
	if now.Sub(slot) > p.interval {
		p.late++
	}
	p.next = slot.Add(p.interval)
	if behind := now.Sub(p.next); behind >= 0 {
		// Slots next, next+interval, ... up to now are due: backlog of them.
		backlog := int64(behind/p.interval) + 1
		if skip := backlog - (p.burst - 1); skip > 0 {
			p.skipped += skip
			p.next = p.next.Add(time.Duration(skip) * p.interval)
		}
	}
	return slot
}

// rateInterval is the time between two messages of a session sending rate per second.
func rateInterval(rate float64) time.Duration {
	return time.Duration(math.Round(float64(time.Second) / rate))
}

// Histogram layout: values (microseconds) below histLinear are exact; above, each power of
// two is split in histSub buckets (a relative error under 1/histSub).
const (
	histSubBits = 9
	histSub     = 1 << histSubBits // 512
	histLinear  = 2 * histSub      // 1024
	histBuckets = histLinear + (64-histSubBits-1)*histSub
)

func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // >= 1
	return histLinear + (shift-1)*histSub + int(v>>shift) - histSub
}

// histUpper is the largest value that lands in bucket i.
func histUpper(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := (i-histLinear)/histSub + 1
	mant := uint64((i-histLinear)%histSub + histSub)
	return (mant+1)<<shift - 1
}

// latHist is a latency histogram in microseconds that many goroutines record into at once
// (atomic counters, fixed memory whatever the number of samples).
type latHist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Uint64
}

func (h *latHist) record(d time.Duration) {
	v := uint64(max(d.Microseconds(), 0))
	h.counts[histIndex(v)].Add(1)
	h.n.Add(1)
	for m := h.max.Load(); v > m && !h.max.CompareAndSwap(m, v); m = h.max.Load() {
	}
}

func (h *latHist) count() uint64 { return h.n.Load() }

// percentile returns the value at rank ceil(p*n) (the bucket's upper bound, at most the
// largest value recorded); 0 when empty. Call it once recording has stopped.
func (h *latHist) percentile(p float64) int64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return int64(min(histUpper(i), h.max.Load()))
		}
	}
	return int64(h.max.Load())
}

func (h *latHist) maxUs() int64 { return int64(h.max.Load()) }
